"""Read receipts (table ``receipts``)."""

from __future__ import annotations

from dataclasses import dataclass

from myelin.storage.database import Database


@dataclass(frozen=True, slots=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str  # '' when unthreaded
    event_id: str
    ts: int


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, receipt: Receipt, stream_id: int) -> None:
        await self._db.execute(
            "INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, ts,"
            " stream_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE"
            " SET event_id = excluded.event_id, ts = excluded.ts,"
            " stream_id = excluded.stream_id",
            receipt.room_id, receipt.receipt_type, receipt.user_id, receipt.thread_id,
            receipt.event_id, receipt.ts, stream_id,
        )

    async def list_for_rooms(self, room_ids: list[str], after: int,
                             upto: int) -> list[Receipt]:
        """Receipts in these rooms written in (after, upto] (all current ones for after=-1)."""
        if not room_ids:
            return []
        placeholders = ", ".join(f"${i + 3}" for i in range(len(room_ids)))
        rows = await self._db.fetch(
            "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts FROM receipts"
            f" WHERE stream_id > $1 AND stream_id <= $2 AND room_id IN ({placeholders})",
            after, upto, *room_ids,
        )
        return [Receipt(r["room_id"], r["receipt_type"], r["user_id"], r["thread_id"],
                        r["event_id"], int(r["ts"])) for r in rows]

    async def get_user_receipt(self, room_id: str, user_id: str, receipt_type: str,
                               thread_id: str = "") -> str | None:
        value = await self._db.fetchval(
            "SELECT event_id FROM receipts WHERE room_id = $1 AND user_id = $2"
            " AND receipt_type = $3 AND thread_id = $4",
            room_id, user_id, receipt_type, thread_id,
        )
        return None if value is None else str(value)
