"""Server-side key backups (tables ``room_key_versions``, ``room_keys``).

Which stored session key a new upload replaces is decided in the upsert itself (its
``DO UPDATE ... WHERE``), so concurrent uploads of one session cannot undo each other's choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from myelin.storage.database import Database, IntegrityError, Queryable


@dataclass(frozen=True, slots=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: dict[str, Any]
    etag: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class RoomKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"first_message_index": self.first_message_index,
                "forwarded_count": self.forwarded_count, "is_verified": self.is_verified,
                "session_data": self.session_data}


class StaleVersionError(Exception):
    """Keys may only be written to the current version; ``current`` is it (None: no backup)."""

    def __init__(self, current: int | None) -> None:
        super().__init__(current)
        self.current = current


# Client-server API, "Server-side key backups": keep the verified key; else the one with the
# lower first_message_index; else the one with the lower forwarded_count.
_UPSERT_KEY = (
    "INSERT INTO room_keys (user_id, version, room_id, session_id, first_message_index,"
    " forwarded_count, is_verified, session_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET"
    " first_message_index = excluded.first_message_index,"
    " forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified,"
    " session_data = excluded.session_data"
    " WHERE (excluded.is_verified AND NOT room_keys.is_verified)"
    " OR (excluded.is_verified = room_keys.is_verified"
    "     AND (excluded.first_message_index < room_keys.first_message_index"
    "          OR (excluded.first_message_index = room_keys.first_message_index"
    "              AND excluded.forwarded_count < room_keys.forwarded_count)))"
)


class KeyBackupStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_version(self, user_id: str, algorithm: str,
                             auth_data: dict[str, Any]) -> int:
        """Add a version numbered after every earlier one (deleted ones too); it is current."""
        for _ in range(5):
            try:
                async with self._db.transaction() as txn:
                    latest = await txn.fetchval(
                        "SELECT MAX(version) FROM room_key_versions WHERE user_id = $1", user_id)
                    version = int(latest or 0) + 1
                    await txn.execute(
                        "INSERT INTO room_key_versions (user_id, version, algorithm, auth_data)"
                        " VALUES ($1, $2, $3, $4)",
                        user_id, version, algorithm, orjson.dumps(auth_data).decode())
                return version
            except IntegrityError:
                continue  # a concurrent create took the number: take the next one
        raise RuntimeError("could not allocate a key backup version")

    async def get_version(self, user_id: str, version: int | None) -> BackupVersion | None:
        """One live version (the current one when None); None if missing or deleted."""
        return await _get_version(self._db, user_id, version)

    async def update_auth_data(self, user_id: str, version: int,
                               auth_data: dict[str, Any]) -> bool:
        return await self._db.execute(
            "UPDATE room_key_versions SET auth_data = $3"
            " WHERE user_id = $1 AND version = $2 AND NOT deleted",
            user_id, version, orjson.dumps(auth_data).decode()) == 1

    async def delete_version(self, user_id: str, version: int) -> bool:
        """Mark the version deleted and drop its keys; False if it never existed."""
        async with self._db.transaction() as txn:
            found = await txn.execute(
                "UPDATE room_key_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2",
                user_id, version)
            if found:
                await txn.execute(
                    "DELETE FROM room_keys WHERE user_id = $1 AND version = $2", user_id, version)
        return found == 1

    async def count(self, user_id: str, version: int) -> int:
        return await _count(self._db, user_id, version)

    async def upload(self, user_id: str, version: int,
                     keys: Sequence[RoomKey]) -> tuple[int, int]:
        """Store ``keys`` in ``version`` if it is the current one (else ``StaleVersionError``,
        nothing written); bump the etag if any key was added or replaced. Returns
        (etag, count)."""
        async with self._db.transaction() as txn:
            current = await _get_version(txn, user_id, None)
            if current is None or current.version != version:
                raise StaleVersionError(current.version if current else None)
            changed = 0
            for key in keys:
                changed += await txn.execute(
                    _UPSERT_KEY, user_id, version, key.room_id, key.session_id,
                    key.first_message_index, key.forwarded_count, key.is_verified,
                    orjson.dumps(key.session_data).decode())
            etag = current.etag
            if changed:
                etag = await _bump_etag(txn, user_id, version)
            return etag, await _count(txn, user_id, version)

    async def get_keys(self, user_id: str, version: int, room_id: str | None = None,
                       session_id: str | None = None) -> list[RoomKey]:
        sql = ("SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,"
               " session_data FROM room_keys WHERE user_id = $1 AND version = $2")
        args: list[Any] = [user_id, version]
        if room_id is not None:
            args.append(room_id)
            sql += f" AND room_id = ${len(args)}"
        if session_id is not None:
            args.append(session_id)
            sql += f" AND session_id = ${len(args)}"
        rows = await self._db.fetch(sql + " ORDER BY room_id, session_id", *args)
        return [RoomKey(r["room_id"], r["session_id"], int(r["first_message_index"]),
                        int(r["forwarded_count"]), bool(r["is_verified"]),
                        dict(orjson.loads(r["session_data"]))) for r in rows]

    async def delete_keys(self, user_id: str, version: int, room_id: str | None = None,
                          session_id: str | None = None) -> tuple[int, int] | None:
        """Delete keys of a live version (None if it is missing or deleted); bump the etag if
        any went. Returns (etag, count)."""
        async with self._db.transaction() as txn:
            info = await _get_version(txn, user_id, version)
            if info is None:
                return None
            sql = "DELETE FROM room_keys WHERE user_id = $1 AND version = $2"
            args: list[Any] = [user_id, version]
            if room_id is not None:
                args.append(room_id)
                sql += f" AND room_id = ${len(args)}"
            if session_id is not None:
                args.append(session_id)
                sql += f" AND session_id = ${len(args)}"
            etag = info.etag
            if await txn.execute(sql, *args):
                etag = await _bump_etag(txn, user_id, version)
            return etag, await _count(txn, user_id, version)


async def _get_version(q: Queryable, user_id: str, version: int | None) -> BackupVersion | None:
    if version is None:
        row = await q.fetchrow(
            "SELECT version, algorithm, auth_data, etag, deleted FROM room_key_versions"
            " WHERE user_id = $1 AND NOT deleted ORDER BY version DESC LIMIT 1", user_id)
    else:
        row = await q.fetchrow(
            "SELECT version, algorithm, auth_data, etag, deleted FROM room_key_versions"
            " WHERE user_id = $1 AND version = $2 AND NOT deleted", user_id, version)
    if row is None:
        return None
    return BackupVersion(int(row["version"]), row["algorithm"],
                         dict(orjson.loads(row["auth_data"])), int(row["etag"]),
                         bool(row["deleted"]))


async def _count(q: Queryable, user_id: str, version: int) -> int:
    return int(await q.fetchval(
        "SELECT COUNT(*) FROM room_keys WHERE user_id = $1 AND version = $2", user_id, version))


async def _bump_etag(q: Queryable, user_id: str, version: int) -> int:
    await q.execute(
        "UPDATE room_key_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2",
        user_id, version)
    return int(await q.fetchval(
        "SELECT etag FROM room_key_versions WHERE user_id = $1 AND version = $2",
        user_id, version))
