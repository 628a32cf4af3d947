"""Small server-wide facts that must outlive a restart (table ``server_meta``)."""

from __future__ import annotations

from myelin.storage.database import Database


class ServerMetaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, name: str) -> str | None:
        value = await self._db.fetchval("SELECT value FROM server_meta WHERE name = $1", name)
        return None if value is None else str(value)

    async def upsert(self, name: str, value: str) -> None:
        await self._db.execute(
            "INSERT INTO server_meta (name, value) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            name, value,
        )
