"""Local room aliases (table ``room_aliases``)."""

from __future__ import annotations

from myelin.storage.database import Database, IntegrityError


class AliasExistsError(Exception):
    """The alias already points at a room."""


class AliasStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_alias(self, alias: str, room_id: str, creator: str, created_ts: int) -> None:
        try:
            await self._db.execute(
                "INSERT INTO room_aliases (room_alias, room_id, creator, created_ts)"
                " VALUES ($1, $2, $3, $4)",
                alias, room_id, creator, created_ts,
            )
        except IntegrityError as e:
            raise AliasExistsError(alias) from e

    async def get_room_id(self, alias: str) -> str | None:
        value = await self._db.fetchval(
            "SELECT room_id FROM room_aliases WHERE room_alias = $1", alias
        )
        return None if value is None else str(value)

    async def get_alias(self, alias: str) -> tuple[str, str] | None:
        """(room_id, creator) of the alias, or None if it does not exist."""
        row = await self._db.fetchrow(
            "SELECT room_id, creator FROM room_aliases WHERE room_alias = $1", alias
        )
        return None if row is None else (str(row["room_id"]), str(row["creator"]))

    async def get_creator(self, alias: str) -> str | None:
        value = await self._db.fetchval(
            "SELECT creator FROM room_aliases WHERE room_alias = $1", alias
        )
        return None if value is None else str(value)

    async def delete_alias(self, alias: str) -> bool:
        return await self._db.execute("DELETE FROM room_aliases WHERE room_alias = $1",
                                      alias) == 1

    async def list_aliases(self, room_id: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT room_alias FROM room_aliases WHERE room_id = $1 ORDER BY room_alias", room_id
        )
        return [r["room_alias"] for r in rows]
