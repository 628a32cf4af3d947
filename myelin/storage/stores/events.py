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
    sender_device: str | None = None
    txn_id: str | None = None
    redacted_by: str | None = None


_COLUMNS = ("e.event_id, e.stream_ordering, e.json, e.outlier, e.rejected_reason,"
            " e.state_group, r.room_version, e.sender_device, e.txn_id,"
            " (SELECT MIN(x.event_id) FROM redactions x WHERE x.redacts = e.event_id)"
            " AS redacted_by")


def _stored(row: Row) -> StoredEvent:
    room_version = KNOWN_ROOM_VERSIONS[row["room_version"]]
    pdu = PDU(orjson.loads(row["json"]), room_version, event_id=row["event_id"])
    return StoredEvent(pdu, row["stream_ordering"], bool(row["outlier"]),
                       row["rejected_reason"], row["state_group"], row["sender_device"],
                       row["txn_id"], row["redacted_by"])


def topological_bound(backwards: bool, first: int) -> tuple[str, str]:
    """SQL bound and order of a topological page from (depth, stream) = (``$first``,
    ``$first+1``): at or before it backwards, strictly after it forwards. A row-value bound
    is an index condition on (room_id, depth, stream_ordering) on both engines, so the scan
    starts at the position instead of filtering from the room's end."""
    d, s = f"${first}", f"${first + 1}"
    if backwards:
        return f"(e.depth, e.stream_ordering) <= ({d}, {s})", "DESC"
    return f"(e.depth, e.stream_ordering) > ({d}, {s})", "ASC"


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

    async def get_room_events_by_stream(
        self, room_id: str, after: int, upto: int, limit: int
    ) -> list[StoredEvent]:
        """The newest ``limit`` timeline events with after < stream_ordering <= upto, oldest
        first (what a sync timeline shows)."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id"
            " WHERE e.room_id = $1 AND e.stream_ordering > $2 AND e.stream_ordering <= $3"
            " AND NOT e.outlier AND e.rejected_reason IS NULL"
            " AND NOT e.soft_failed"
            " ORDER BY e.stream_ordering DESC LIMIT $4",
            room_id, after, upto, limit,
        )
        return [_stored(r) for r in reversed(rows)]

    async def get_room_events_by_topology(
        self, room_id: str, position: tuple[int, int], *, backwards: bool, limit: int
    ) -> list[StoredEvent]:
        """Timeline events ordered by (depth, stream_ordering): with ``backwards``, those at or
        before ``position``, newest first; otherwise those after it, oldest first."""
        depth, stream = position
        where, order = topological_bound(backwards, 2)
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id"
            f" WHERE e.room_id = $1 AND {where}"
            " AND NOT e.outlier AND e.rejected_reason IS NULL"
            " AND NOT e.soft_failed"
            f" ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT $4",
            room_id, depth, stream, limit,
        )
        return [_stored(r) for r in rows]

    async def get_topological_position(self, room_id: str, upto_stream: int) -> tuple[int, int]:
        """(depth, stream_ordering) of the room's newest timeline event at or before a stream
        position; (0, 0) before the room's first event."""
        row = await self._db.fetchrow(
            "SELECT depth, stream_ordering FROM events WHERE room_id = $1"
            " AND stream_ordering <= $2 AND NOT outlier AND rejected_reason IS NULL"
            " AND NOT soft_failed"
            " ORDER BY stream_ordering DESC LIMIT 1",
            room_id, upto_stream,
        )
        return (0, 0) if row is None else (int(row["depth"]), int(row["stream_ordering"]))

    async def get_state_group_before(self, room_id: str, stream: int) -> int | None:
        """The state group after the room's last event strictly before ``stream``."""
        value = await self._db.fetchval(
            "SELECT state_group FROM events WHERE room_id = $1 AND stream_ordering < $2"
            " AND state_group IS NOT NULL ORDER BY stream_ordering DESC LIMIT 1",
            room_id, stream,
        )
        return None if value is None else int(value)

    async def get_event_by_timestamp(self, room_id: str, ts: int, *, forwards: bool,
                                     limit: int) -> list[StoredEvent]:
        """Timeline events nearest ``ts``: the first ones at or after it (``forwards``), else
        the last ones at or before it."""
        op, order = (">=", "ASC") if forwards else ("<=", "DESC")
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM events e JOIN rooms r ON r.room_id = e.room_id"
            f" WHERE e.room_id = $1 AND e.origin_server_ts {op} $2"
            " AND NOT e.outlier AND e.rejected_reason IS NULL"
            " AND NOT e.soft_failed"
            f" ORDER BY e.origin_server_ts {order}, e.stream_ordering {order} LIMIT $3",
            room_id, ts, limit,
        )
        return [_stored(r) for r in rows]

    async def get_rooms_changed(self, after: int, upto: int) -> set[str]:
        rows = await self._db.fetch(
            "SELECT DISTINCT room_id FROM events WHERE stream_ordering > $1"
            " AND stream_ordering <= $2",
            after, upto,
        )
        return {r["room_id"] for r in rows}

    async def max_stream_ordering(self) -> int:
        value = await self._db.fetchval("SELECT MAX(stream_ordering) FROM events")
        return int(value) if value is not None else 0
