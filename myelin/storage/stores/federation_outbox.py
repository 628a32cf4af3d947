"""The outbound federation queue (tables ``federation_outbox``, ``federation_destinations``).

Every PDU and EDU this server must push to another server waits here until that server
acknowledged the transaction carrying it, so neither a restart nor a peer that is down for a
day loses anything. Items of one destination are ordered by ``position``, handed out here from
an in-process counter that starts above the largest stored position (one process writes, as
for the other streams): a PDU sent to many servers takes one position for all of them, and no
engine-specific auto-increment is needed.

Deleting is always by exact position: a position allocated earlier may commit after a later
one was already read and sent, so "everything up to position N" could delete an unsent item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from myelin.storage.database import Database, Queryable, Statement

PDU = "pdu"
EDU = "edu"

_INSERT = (
    "INSERT INTO federation_outbox (destination, position, kind, edu_type, edu_key, body,"
    " queued_ts) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)


@dataclass(frozen=True, slots=True)
class QueuedItem:
    position: int
    kind: str  # PDU or EDU
    body: dict[str, Any]  # the PDU, or the EDU as sent: {"edu_type": ..., "content": ...}


@dataclass(frozen=True, slots=True)
class DestinationState:
    destination: str
    failures: int  # consecutive failed attempts; 0 once one succeeds
    retry_at_ts: int | None  # ms; no attempt before this
    last_success_ts: int | None  # ms


@dataclass(frozen=True, slots=True)
class QueueSize:
    pdus: int
    edus: int


class FederationOutboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._last_position: int | None = None
        self._init_lock = asyncio.Lock()

    async def _next_position(self) -> int:
        if self._last_position is None:
            async with self._init_lock:
                if self._last_position is None:
                    current = await self._db.fetchval(
                        "SELECT MAX(position) FROM federation_outbox")
                    self._last_position = int(current) if current is not None else 0
        self._last_position += 1
        return self._last_position

    # -- queueing --------------------------------------------------------------------------

    async def add_pdu(self, destinations: Sequence[str], pdu: dict[str, Any],
                      now_ms: int) -> None:
        """Queue ``pdu`` for every destination, in one write."""
        if not destinations:
            return
        position = await self._next_position()
        body = orjson.dumps(pdu).decode()
        rows = [(d, position, PDU, None, None, body, now_ms) for d in destinations]
        await self._db.write_batch([Statement(_INSERT, rows, many=True)])

    async def add_edu(self, destination: str, edu_type: str, content: dict[str, Any], *,
                      key: str | None, now_ms: int) -> bool:
        """Queue an EDU; returns whether it replaced a queued one of the same type and key.

        The newer EDU goes to the end of the queue (it is the newest news). The upsert covers
        two concurrent replacements racing on PostgreSQL (the DELETE alone would let both
        INSERTs through to the unique index).
        """
        position = await self._next_position()
        body = orjson.dumps({"edu_type": edu_type, "content": content}).decode()
        if key is None:
            await self._db.execute(_INSERT, destination, position, EDU, edu_type, None, body,
                                   now_ms)
            return False
        async with self._db.transaction() as txn:
            replaced = await txn.execute(
                "DELETE FROM federation_outbox WHERE destination = $1 AND edu_type = $2"
                " AND edu_key = $3", destination, edu_type, key)
            await txn.execute(
                _INSERT + " ON CONFLICT (destination, edu_type, edu_key)"
                " WHERE edu_key IS NOT NULL DO UPDATE SET position = excluded.position,"
                " body = excluded.body, queued_ts = excluded.queued_ts",
                destination, position, EDU, edu_type, key, body, now_ms)
        return replaced > 0

    async def trim(self, destination: str, kind: str, keep: int) -> tuple[int, int]:
        """Drop the oldest items of one ``kind`` (PDU or EDU) of ``destination`` beyond
        ``keep``; the other kind is untouched.

        Returns (dropped, items of that kind left), counted in the same transaction so the
        caller's in-memory count is corrected whatever it believed.
        """
        async with self._db.transaction() as txn:
            count = int(await txn.fetchval(
                "SELECT COUNT(*) FROM federation_outbox WHERE destination = $1 AND kind = $2",
                destination, kind))
            if count <= keep:
                return 0, count
            dropped = await txn.execute(
                "DELETE FROM federation_outbox WHERE destination = $1 AND kind = $2"
                " AND position IN (SELECT position FROM federation_outbox WHERE destination = $1"
                " AND kind = $2 ORDER BY position LIMIT $3)", destination, kind, count - keep)
        return dropped, count - dropped

    # -- sending ---------------------------------------------------------------------------

    async def next_batch(self, destination: str, max_pdus: int, max_edus: int,
                         max_items: int | None = None) -> list[QueuedItem]:
        """The oldest items of ``destination``: at most ``max_pdus`` PDUs and ``max_edus`` EDUs
        (and at most ``max_items`` in all, when given).

        When a limit cuts the queue short, every kind stops at the same place, so the order
        items were queued in is the order transactions carry them (no receipt for an event
        overtaking the event).
        """
        pdus = await self._oldest(destination, PDU, max_pdus + 1)
        edus = await self._oldest(destination, EDU, max_edus + 1)
        cutoff: int | None = None
        for items, limit in ((pdus, max_pdus), (edus, max_edus)):
            if len(items) > limit:
                first_left = items[limit].position
                cutoff = first_left if cutoff is None else min(cutoff, first_left)
        merged = sorted(pdus + edus, key=lambda item: item.position)
        if cutoff is not None:
            merged = [i for i in merged if i.position < cutoff]
        return merged if max_items is None else merged[:max_items]

    async def _oldest(self, destination: str, kind: str, limit: int) -> list[QueuedItem]:
        rows = await self._db.fetch(
            "SELECT position, body FROM federation_outbox WHERE destination = $1 AND kind = $2"
            " ORDER BY position LIMIT $3", destination, kind, limit)
        return [QueuedItem(int(r["position"]), kind, orjson.loads(r["body"])) for r in rows]

    async def remove(self, destination: str, items: Sequence[QueuedItem], *, now_ms: int,
                     delivered: bool) -> QueueSize:
        """Delete exactly ``items`` and record that the destination answered.

        ``delivered`` also stamps ``last_success_ts``. Returns how many PDUs and EDUs were
        actually deleted (a queued EDU may have been replaced meanwhile).
        """
        async with self._db.transaction() as txn:
            pdus = await _delete(txn, destination, PDU,
                                 [i.position for i in items if i.kind == PDU])
            edus = await _delete(txn, destination, EDU,
                                 [i.position for i in items if i.kind == EDU])
            await _upsert_state(txn, destination, 0, None, now_ms if delivered else None)
        return QueueSize(pdus, edus)

    async def queue_sizes(self) -> dict[str, QueueSize]:
        """Every destination with something queued, and how much (for start-up catch-up)."""
        rows = await self._db.fetch(
            "SELECT destination, kind, COUNT(*) AS n FROM federation_outbox"
            " GROUP BY destination, kind")
        counts: dict[str, dict[str, int]] = {}
        for r in rows:
            counts.setdefault(r["destination"], {})[r["kind"]] = int(r["n"])
        return {d: QueueSize(c.get(PDU, 0), c.get(EDU, 0)) for d, c in counts.items()}

    # -- retry state -----------------------------------------------------------------------

    async def failing_destinations(self) -> list[DestinationState]:
        rows = await self._db.fetch(
            "SELECT destination, failures, retry_at_ts, last_success_ts"
            " FROM federation_destinations WHERE failures > 0 OR retry_at_ts IS NOT NULL")
        return [_state(r) for r in rows]

    async def destination_state(self, destination: str) -> DestinationState | None:
        row = await self._db.fetchrow(
            "SELECT destination, failures, retry_at_ts, last_success_ts"
            " FROM federation_destinations WHERE destination = $1", destination)
        return None if row is None else _state(row)

    async def set_retry(self, destination: str, failures: int, retry_at_ts: int | None) -> None:
        """Record a failed attempt (or, with 0 and None, that the back-off was lifted)."""
        async with self._db.transaction() as txn:
            await _upsert_state(txn, destination, failures, retry_at_ts, None)


async def _delete(txn: Queryable, destination: str, kind: str, positions: list[int]) -> int:
    if not positions:
        return 0
    # A batch holds at most a few hundred positions: an IN list works on both engines.
    marks = ", ".join(f"${n}" for n in range(3, len(positions) + 3))
    return await txn.execute(
        f"DELETE FROM federation_outbox WHERE destination = $1 AND kind = $2"
        f" AND position IN ({marks})", destination, kind, *positions)


async def _upsert_state(txn: Queryable, destination: str, failures: int,
                        retry_at_ts: int | None, success_ts: int | None) -> None:
    await txn.execute(
        "INSERT INTO federation_destinations (destination, failures, retry_at_ts,"
        " last_success_ts) VALUES ($1, $2, $3, $4) ON CONFLICT (destination) DO UPDATE SET"
        " failures = excluded.failures, retry_at_ts = excluded.retry_at_ts,"
        " last_success_ts = COALESCE(excluded.last_success_ts,"
        " federation_destinations.last_success_ts)",
        destination, failures, retry_at_ts, success_ts)


def _state(row: Any) -> DestinationState:
    return DestinationState(
        row["destination"], int(row["failures"]),
        None if row["retry_at_ts"] is None else int(row["retry_at_ts"]),
        None if row["last_success_ts"] is None else int(row["last_success_ts"]),
    )
