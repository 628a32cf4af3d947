"""Uploaded client filters (table ``filters``)."""

from __future__ import annotations

from myelin.storage.database import Database


class FilterStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_or_get(self, user_id: str, filter_json: str) -> int:
        """The ID of this exact filter for this user, creating it if new."""
        async with self._db.transaction() as txn:
            existing = await txn.fetchval(
                "SELECT filter_id FROM filters WHERE user_id = $1 AND filter_json = $2",
                user_id, filter_json,
            )
            if existing is not None:
                return int(existing)
            next_id = await txn.fetchval(
                "SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = $1",
                user_id,
            )
            await txn.execute(
                "INSERT INTO filters (user_id, filter_id, filter_json) VALUES ($1, $2, $3)",
                user_id, int(next_id), filter_json,
            )
            return int(next_id)

    async def get(self, user_id: str, filter_id: int) -> str | None:
        value = await self._db.fetchval(
            "SELECT filter_json FROM filters WHERE user_id = $1 AND filter_id = $2",
            user_id, filter_id,
        )
        return None if value is None else str(value)
