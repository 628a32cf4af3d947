"""Reading events back (table ``events`` and the DAG tables)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from myelin.core.events import PDU
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from myelin.storage.database import Database, Row


@dataclass(frozen=True, slots=True)
class StoredEvent:
    pdu: PDU
    stream_ordering: int
    outlier: bool
    rejected_reason: str | None
    state_group: int | None


_COLUMNS = ("e.event_id, e.stream_ordering, e.json, e.outlier, e.rejected_reason,"
            " e.state_group, r.room_version")


def _stored(row: Row) -> StoredEvent:
    room_version = KNOWN_ROOM_VERSIONS[row["room_version"]]
    pdu = PDU(orjson.loads(row["json"]), room_version, event_id=row["event_id"])
    return StoredEvent(pdu, row["stream_ordering"], bool(row["outlier"]),
                       row["rejected_reason"], row["state_group"])


class EventStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_event(self, event_id: str) -> StoredEvent | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id"
            " WHERE e.event_id = $1",
            event_id,
        )
        return None if row is None else _stored(row)

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        ids = list(dict.fromkeys(event_ids))
        found: dict[str, StoredEvent] = {}
        for start in range(0, len(ids), 500):  # stays under both engines' parameter limits
            chunk = ids[start:start + 500]
            placeholders = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            rows = await self._db.fetch(
                f"SELECT {_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id"
                f" WHERE e.event_id IN ({placeholders})",
                *chunk,
            )
            for row in rows:
                found[row["event_id"]] = _stored(row)
        return found

    async def get_forward_extremities(self, room_id: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT event_id FROM forward_extremities WHERE room_id = $1 ORDER BY event_id",
            room_id,
        )
        return [r["event_id"] for r in rows]

    async def get_room_version(self, room_id: str) -> RoomVersion | None:
        value = await self._db.fetchval("SELECT room_version FROM rooms WHERE room_id = $1",
                                        room_id)
        return None if value is None else KNOWN_ROOM_VERSIONS[value]

    async def get_client_transaction(self, user_id: str, device_id: str, endpoint: str,
                                     txn_id: str) -> bytes | None:
        value = await self._db.fetchval(
            "SELECT response FROM client_transactions WHERE user_id = $1 AND device_id = $2"
            " AND endpoint = $3 AND txn_id = $4",
            user_id, device_id, endpoint, txn_id,
        )
        return None if value is None else str(value).encode()

    async def max_stream_ordering(self) -> int:
        value = await self._db.fetchval("SELECT MAX(stream_ordering) FROM events")
        return int(value) if value is not None else 0
