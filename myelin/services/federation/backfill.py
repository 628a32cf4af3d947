"""Fetching a room's older history from other servers (server-server API, "Backfilling and
retrieving missing events"), so /messages on a server that joined late goes back past its
join without gaps.

The places to backfill from are the room's backward extremities: prev events of timeline
events that this server does not hold in its timeline. Each batch is checked like any received
event and stored oldest first as history (negative stream positions, current state untouched);
where an event's own prev events are unknown too, the state before it comes from the server
that sent it (``state_ids``).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

from myelin.core.events import PDU, StateKey
from myelin.services.federation.client import FederationClient, FederationError
from myelin.services.federation.event_validation import EventValidator
from myelin.services.federation.receiver import TransactionReceiver
from myelin.services.rooms.incoming import IncomingEvents, MissingEvents
from myelin.services.rooms.timeline import Timeline
from myelin.storage.database import Database
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.state import StateStore

log = logging.getLogger("myelin.federation")

BATCH = 100
MAX_EXTREMITIES = 20


class Backfiller:
    def __init__(self, server_name: str, db: Database, client: FederationClient,
                 validator: EventValidator, incoming: IncomingEvents, timeline: Timeline,
                 events: EventStore, state: StateStore, receiver: TransactionReceiver) -> None:
        self._server_name = server_name
        self._db = db
        self._client = client
        self._validator = validator
        self._incoming = incoming
        self._timeline = timeline
        self._events = events
        self._state = state
        self._receiver = receiver
        self._locks: dict[str, asyncio.Lock] = {}

    async def backward_extremities(self, room_id: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT DISTINCT x.prev_event_id, e.depth FROM event_edges x"
            " JOIN events e ON e.event_id = x.event_id"
            " WHERE e.room_id = $1 AND NOT e.outlier AND NOT EXISTS ("
            "   SELECT 1 FROM events p WHERE p.event_id = x.prev_event_id AND NOT p.outlier)"
            " ORDER BY e.depth LIMIT $2", room_id, MAX_EXTREMITIES)
        return [r["prev_event_id"] for r in rows]

    async def backfill(self, room_id: str, limit: int = BATCH) -> int:
        """Fetch up to ``limit`` older events; returns how many were added."""
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            extremities = await self.backward_extremities(room_id)
            if not extremities:
                return 0
            room = await self._timeline.room(room_id)
            if room is None:
                return 0
            members = await self._state.joined_members(room_id)
            servers = sorted({m.split(":", 1)[1] for m in members if ":" in m}
                             - {self._server_name})
            for server in servers:
                try:
                    answer = await self._client.request(
                        server, "GET", f"/_matrix/federation/v1/backfill/"
                        f"{quote(room_id, safe='')}",
                        query={"v": extremities, "limit": str(min(limit, BATCH))})
                except FederationError as e:
                    log.info("backfill of %s from %s failed: %s", room_id, server, e)
                    continue
                raw = answer.get("pdus") if isinstance(answer, dict) else None
                good, problems = await self._validator.validate_many(
                    raw if isinstance(raw, list) else [], room.room_version)
                for problem in problems:
                    log.info("backfilled event from %s dropped: %s", server, problem)
                added = await self._store(server, [p for p in good.values()
                                                   if p.room_id == room_id])
                if added:
                    return added
            return 0

    async def _store(self, server: str, pdus: list[PDU]) -> int:
        added = 0
        for pdu in sorted(pdus, key=lambda p: (p.depth, p.event_id)):
            stored = await self._events.get_event(pdu.event_id)
            if stored is not None and not stored.outlier:
                continue
            try:
                await self._receiver.fetch_auth_events(server, pdu)
                try:
                    outcome = await self._incoming.receive(pdu, historical=True)
                except MissingEvents:
                    state = await self._state_before(server, pdu)
                    outcome = await self._incoming.receive(pdu, state_before=state,
                                                           historical=True)
            except (MissingEvents, FederationError) as e:
                log.info("backfilled event %s not stored: %s", pdu.event_id, e)
                continue
            if outcome.accepted:
                added += 1
        return added

    async def _state_before(self, server: str, pdu: PDU) -> dict[StateKey, str]:
        """The state before ``pdu`` as ``server`` sees it (its prev events are unknown)."""
        return await self._receiver.state_at(server, pdu)
