"""Client account data (table ``account_data``); room_id '' holds the global entries."""

from __future__ import annotations

from typing import Any

import orjson

from myelin.storage.database import Database

GLOBAL = ""


class AccountDataStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, user_id: str, room_id: str, data_type: str, content: dict[str, Any],
                     stream_id: int) -> None:
        await self._db.execute(
            "INSERT INTO account_data (user_id, room_id, type, content, stream_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, room_id, type)"
            " DO UPDATE SET content = excluded.content, stream_id = excluded.stream_id",
            user_id, room_id, data_type, orjson.dumps(content).decode(), stream_id,
        )

    async def get(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any] | None:
        value = await self._db.fetchval(
            "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3",
            user_id, room_id, data_type,
        )
        return None if value is None else dict(orjson.loads(value))

    async def list_changed(self, user_id: str, after: int,
                           upto: int) -> list[tuple[str, str, dict[str, Any]]]:
        """(room_id, type, content) of entries written after ``after`` up to ``upto``."""
        rows = await self._db.fetch(
            "SELECT room_id, type, content FROM account_data WHERE user_id = $1"
            " AND stream_id > $2 AND stream_id <= $3 ORDER BY stream_id",
            user_id, after, upto,
        )
        return [(r["room_id"], r["type"], dict(orjson.loads(r["content"]))) for r in rows]
