"""Content reports for the server admins (table ``reports``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from myelin.storage.database import Database


@dataclass(frozen=True, slots=True)
class Report:
    report_id: int
    kind: str  # "event", "room" or "user"
    reporter: str
    room_id: str | None
    event_id: str | None
    target_user: str | None
    reason: str | None
    score: int | None
    content: dict[str, Any]
    received_ts: int


class ReportStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, kind: str, reporter: str, *, room_id: str | None = None,
                  event_id: str | None = None, target_user: str | None = None,
                  reason: str | None, score: int | None = None, content: dict[str, Any],
                  received_ts: int) -> None:
        await self._db.execute(
            "INSERT INTO reports (kind, reporter, room_id, event_id, target_user, reason, score,"
            " content, received_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            kind, reporter, room_id, event_id, target_user, reason, score,
            orjson.dumps(content).decode(), received_ts,
        )

    async def recent(self, *, limit: int = 100, before_id: int | None = None) -> list[Report]:
        """The newest reports first, optionally only those older than ``before_id``."""
        rows = await self._db.fetch(
            "SELECT report_id, kind, reporter, room_id, event_id, target_user, reason, score,"
            " content, received_ts FROM reports WHERE report_id < $1"
            " ORDER BY report_id DESC LIMIT $2",
            before_id if before_id is not None else 2**63 - 1, limit,
        )
        return [Report(int(r["report_id"]), r["kind"], r["reporter"], r["room_id"], r["event_id"],
                       r["target_user"], r["reason"],
                       None if r["score"] is None else int(r["score"]),
                       dict(orjson.loads(r["content"])), int(r["received_ts"])) for r in rows]
