"""Notifications (table ``notifications``): the events local users were notified about.

The unread count reads the ``receipts``, ``events`` and ``room_memberships`` tables too: a
user's read position in a room is the stream position of their newest unthreaded ``m.read`` or
``m.read.private`` receipt, and only rooms they are joined to count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from myelin.storage.database import Database, Row

_COLUMNS = "user_id, stream_ordering, room_id, event_id, actions, highlight, ts, thread_id"


class Notification(NamedTuple):
    """One notification row. A named tuple: push evaluation makes one per notified recipient
    of every event, and a tuple is the cheapest immutable record to build."""

    user_id: str
    stream_ordering: int
    room_id: str
    event_id: str
    actions: list[Any]
    highlight: bool
    ts: int  # ms, when the notification was recorded
    thread_id: str | None = None  # root of the m.thread the event is in; None: main timeline


def _notification(row: Row) -> Notification:
    return Notification(row["user_id"], int(row["stream_ordering"]), row["room_id"],
                        row["event_id"], orjson.loads(row["actions"]), bool(row["highlight"]),
                        int(row["ts"]), row["thread_id"])


class NotificationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, notifications: Sequence[Notification]) -> None:
        """Record notifications; one already recorded for the same user and event is kept."""
        if not notifications:
            return
        await self._db.executemany(
            f"INSERT INTO notifications ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (user_id, stream_ordering) DO NOTHING",
            [(n.user_id, n.stream_ordering, n.room_id, n.event_id,
              orjson.dumps(n.actions).decode(), n.highlight, n.ts, n.thread_id)
             for n in notifications])

    async def in_room(self, user_id: str, room_id: str, after: int, upto: int,
                      limit: int) -> list[tuple[int, bool, str | None]]:
        """(stream position, highlight, thread) of the user's notifications in the room at
        positions in (after, upto], newest first, at most ``limit`` (the unread counts)."""
        rows = await self._db.fetch(
            "SELECT stream_ordering, highlight, thread_id FROM notifications"
            " WHERE user_id = $1 AND room_id = $2 AND stream_ordering > $3"
            " AND stream_ordering <= $4 ORDER BY stream_ordering DESC LIMIT $5",
            user_id, room_id, after, upto, limit)
        return [(int(r["stream_ordering"]), bool(r["highlight"]), r["thread_id"])
                for r in rows]

    async def newest_first(self, user_id: str, before: int | None, limit: int,
                           only_highlight: bool) -> list[Notification]:
        """A page of ``GET /notifications``: stream positions below ``before``, newest first."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND stream_ordering < $2"
            + (" AND highlight" if only_highlight else "")
            + " ORDER BY stream_ordering DESC LIMIT $3",
            user_id, before if before is not None else 2**63 - 1, limit)
        return [_notification(r) for r in rows]

    async def oldest_first(self, user_id: str, after: int, upto: int,
                           limit: int) -> list[Notification]:
        """What a pusher has still to deal with: stream positions in (after, upto], in order."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND stream_ordering > $2"
            " AND stream_ordering <= $3 ORDER BY stream_ordering LIMIT $4",
            user_id, after, upto, limit)
        return [_notification(r) for r in rows]

    async def unread_count(self, user_id: str) -> int:
        """Notifications after the user's read receipt, over every room they are joined to."""
        value = await self._db.fetchval(
            "SELECT COUNT(*) FROM notifications n JOIN ("
            "  SELECT m.room_id, COALESCE(("
            "    SELECT MAX(e.stream_ordering) FROM receipts r"
            "    JOIN events e ON e.event_id = r.event_id"
            "    WHERE r.room_id = m.room_id AND r.user_id = $1 AND r.thread_id = ''"
            "    AND r.receipt_type IN ('m.read', 'm.read.private')), -1) AS read_upto"
            "  FROM room_memberships m WHERE m.user_id = $1 AND m.membership = 'join'"
            "  AND m.room_id IN (SELECT DISTINCT room_id FROM notifications WHERE user_id = $1)"
            ") rooms ON rooms.room_id = n.room_id"
            " WHERE n.user_id = $1 AND n.stream_ordering > rooms.read_upto",
            user_id)
        return int(value or 0)

    async def prune(self, older_than_ts: int) -> int:
        """Delete notifications recorded before ``older_than_ts`` (ms); returns how many."""
        return await self._db.execute("DELETE FROM notifications WHERE ts < $1", older_than_ts)
