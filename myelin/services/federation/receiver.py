"""Incoming transactions (server-server API, "Transactions", ``PUT /send/{txnId}``): each PDU
through the receipt checks, with what it references fetched first; EDUs to their handlers.

A PDU whose prev events are unknown here triggers ``get_missing_events`` from the sending
server; if the gap cannot be closed that way, the state before it is fetched with
``state_ids`` (plus whichever of those events are unknown), as the spec's "Backfilling and
retrieving missing events" describes. Auth events this server lacks come from ``event_auth``.
A bad PDU gets an error in the response's per-PDU results; it never fails the transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from myelin.core.auth import AuthError, check_auth
from myelin.core.events import PDU, StateKey, compute_event_id
from myelin.core.room_versions import RoomVersion
from myelin.errors import bad_json
from myelin.services.federation.client import FederationClient, FederationError
from myelin.services.federation.event_validation import EventValidator, InvalidEvent
from myelin.services.rooms.incoming import IncomingEvents, MissingEvents, implied_create_event_id
from myelin.services.rooms.timeline import CREATE, Timeline
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.state import StateStore

log = logging.getLogger("myelin.federation")

EduHandler = Callable[[str, Any], Awaitable[None]]
MAX_PDUS, MAX_EDUS = 50, 100
MISSING_EVENTS_LIMIT = 20
_SEEN_TRANSACTIONS = 10_000


class TransactionReceiver:
    def __init__(self, server_name: str, client: FederationClient, validator: EventValidator,
                 incoming: IncomingEvents, timeline: Timeline, events: EventStore,
                 state: StateStore, acl_allows: Callable[[str, str], Awaitable[bool]]) -> None:
        self._server_name = server_name
        self._client = client
        self._validator = validator
        self._incoming = incoming
        self._timeline = timeline
        self._events = events
        self._state = state
        self._acl_allows = acl_allows
        self.edu_handlers: dict[str, EduHandler] = {}
        self._seen: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._room_locks: dict[str, asyncio.Lock] = {}

    async def on_transaction(self, origin: str, txn_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_json("A transaction is a JSON object")
        seen = self._seen.get((origin, txn_id))
        if seen is not None:  # a retry of a transaction already processed
            return seen
        pdus = body.get("pdus", [])
        edus = body.get("edus", [])
        if not isinstance(pdus, list) or not isinstance(edus, list):
            raise bad_json("pdus and edus must be lists")
        if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
            raise bad_json(f"At most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs per transaction")
        results: dict[str, Any] = {}
        for raw in pdus:
            event_id, error = await self._on_pdu(origin, raw)
            if event_id is not None:
                results[event_id] = {} if error is None else {"error": error}
        for edu in edus:
            await self._on_edu(origin, edu)
        response = {"pdus": results}
        self._seen[(origin, txn_id)] = response
        if len(self._seen) > _SEEN_TRANSACTIONS:
            self._seen.popitem(last=False)
        return response

    async def _on_edu(self, origin: str, edu: Any) -> None:
        if not isinstance(edu, dict) or not isinstance(edu.get("edu_type"), str):
            return
        handler = self.edu_handlers.get(edu["edu_type"])
        if handler is None:
            return
        try:
            await handler(origin, edu.get("content"))
        except Exception:
            log.exception("EDU %s from %s failed", edu["edu_type"], origin)

    async def _on_pdu(self, origin: str, raw: Any) -> tuple[str | None, str | None]:
        if not isinstance(raw, dict) or not isinstance(raw.get("room_id"), str):
            return None, None
        room_id = raw["room_id"]
        version = await self._events.get_room_version(room_id)
        if version is None:
            return None, None  # not a room we are in: nothing to answer about
        try:
            event_id = compute_event_id(raw, version)
        except Exception:
            return None, None
        if not await self._acl_allows(room_id, origin):
            return event_id, "This server is denied by the room's server ACL"
        lock = self._room_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            try:
                pdu = await self._validator.validate(raw, version)
                outcome = await self._process(origin, pdu, version, depth=0)
            except InvalidEvent as e:
                return event_id, str(e)
            except (MissingEvents, FederationError) as e:
                log.info("could not process %s from %s: %s", event_id, origin, e)
                return event_id, f"Could not fetch what the event references: {e}"
            except Exception:
                # A bug here must not fail the whole transaction: the sender would resend it,
                # good PDUs included, for ever. This PDU is answered with an error instead.
                log.exception("processing %s from %s failed", event_id, origin)
                return event_id, "Internal error while processing the event"
        return event_id, outcome

    async def _process(self, origin: str, pdu: PDU, version: RoomVersion,
                       depth: int) -> str | None:
        """Receive one validated PDU, fetching what it references; None if accepted."""
        try:
            outcome = await self._incoming.receive(pdu)
        except MissingEvents as missing:
            await self._fill_gaps(origin, pdu, version, missing, depth)
            stored = await self._events.get_events(pdu.prev_event_ids)
            if all(e in stored and stored[e].state_group is not None
                   for e in pdu.prev_event_ids):
                outcome = await self._incoming.receive(pdu)
            else:
                state = await self._state_before_from(origin, pdu, version)
                outcome = await self._incoming.receive(pdu, state_before=state)
        return outcome.rejected_reason

    async def _fill_gaps(self, origin: str, pdu: PDU, version: RoomVersion,
                         missing: MissingEvents, depth: int) -> None:
        stored = await self._events.get_events(pdu.auth_event_ids)
        if any(e not in stored for e in pdu.auth_event_ids):
            await self._fetch_auth_chain(origin, pdu, version)
        prevs = await self._events.get_events(pdu.prev_event_ids)
        if all(e in prevs and prevs[e].state_group is not None for e in pdu.prev_event_ids):
            return
        if depth > 0:
            return  # one round of get_missing_events per incoming PDU
        room = await self._timeline.room(pdu.room_id)
        earliest = room.extremities if room is not None else []
        try:
            answer = await self._client.request(
                origin, "POST", f"/_matrix/federation/v1/get_missing_events/"
                f"{quote(pdu.room_id, safe='')}",
                json={"earliest_events": earliest, "latest_events": [pdu.event_id],
                      "limit": MISSING_EVENTS_LIMIT, "min_depth": 0})
        except FederationError as e:
            log.info("get_missing_events for %s failed: %s", pdu.event_id, e)
            return
        raw_events = answer.get("events") if isinstance(answer, dict) else None
        good, _ = await self._validator.validate_many(
            raw_events if isinstance(raw_events, list) else [], version)
        for event in sorted(good.values(), key=lambda p: (p.depth, p.event_id)):
            if event.room_id != pdu.room_id:
                continue
            try:
                await self._process(origin, event, version, depth + 1)
            except (MissingEvents, FederationError) as e:
                log.info("missing event %s not processed: %s", event.event_id, e)

    async def fetch_auth_events(self, origin: str, pdu: PDU) -> None:
        """Make sure the auth events of ``pdu`` are stored, asking ``origin`` if not."""
        stored = await self._events.get_events(pdu.auth_event_ids)
        if any(e not in stored for e in pdu.auth_event_ids):
            await self._fetch_auth_chain(origin, pdu, pdu.room_version)

    async def state_at(self, origin: str, pdu: PDU) -> dict[StateKey, str]:
        """The state before ``pdu`` as ``origin`` answers ``/state`` for it (one request with
        the events and their auth chain), each event checked before it is stored."""
        answer = await self._client.request(
            origin, "GET", f"/_matrix/federation/v1/state/{quote(pdu.room_id, safe='')}",
            query={"event_id": pdu.event_id})
        raw_state = answer.get("pdus") if isinstance(answer, dict) else None
        raw_chain = answer.get("auth_chain") if isinstance(answer, dict) else None
        state, _ = await self._validator.validate_many(
            raw_state if isinstance(raw_state, list) else [], pdu.room_version)
        chain, _ = await self._validator.validate_many(
            raw_chain if isinstance(raw_chain, list) else [], pdu.room_version)
        await self._store_checked_outliers(pdu.room_id, {**chain, **state})
        known = await self._events.get_events(state)
        return {p.state_tuple: p.event_id for e, p in state.items()
                if p.is_state and e in known and known[e].rejected_reason is None}

    async def _fetch_auth_chain(self, origin: str, pdu: PDU, version: RoomVersion) -> None:
        """Server-server API, "Retrieving event authorisation information"."""
        answer = await self._client.request(
            origin, "GET", f"/_matrix/federation/v1/event_auth/{quote(pdu.room_id, safe='')}/"
            f"{quote(pdu.event_id, safe='')}")
        chain = answer.get("auth_chain") if isinstance(answer, dict) else None
        good, _ = await self._validator.validate_many(
            chain if isinstance(chain, list) else [], version)
        await self._store_checked_outliers(pdu.room_id, good)

    async def _store_checked_outliers(self, room_id: str, pool: Mapping[str, PDU]) -> None:
        """Store fetched auth events as outliers, each checked against its own auth events
        (receipt step 4) in depth order; failures are dropped."""
        known = await self._events.get_events(
            {a for p in pool.values() for a in p.auth_event_ids})
        available: dict[str, PDU] = {e: s.pdu for e, s in known.items()
                                     if s.rejected_reason is None}
        accepted: list[PDU] = []
        create_id = implied_create_event_id(room_id)
        for event in sorted(pool.values(), key=lambda p: (p.depth, p.event_id)):
            if event.room_id != room_id:
                continue
            auth_state: dict[StateKey, PDU] = {}
            if not all(a in available for a in event.auth_event_ids):
                continue
            for auth_id in event.auth_event_ids:
                auth_state[available[auth_id].state_tuple] = available[auth_id]
            if event.room_version.room_id_from_create_event and event.type != "m.room.create":
                create = available.get(create_id) or (
                    await self._timeline.get_pdus([create_id])).get(create_id)
                if create is not None:
                    auth_state[CREATE] = create
            try:
                check_auth(event, auth_state)
            except AuthError:
                continue
            available[event.event_id] = event
            accepted.append(event)
        await self._timeline.store_outliers(accepted)

    async def _state_before_from(self, origin: str, pdu: PDU,
                                 version: RoomVersion) -> dict[StateKey, str]:
        """The state before ``pdu`` when its prev events cannot be linked: the state after
        each prev event, asked of ``origin`` (``state_ids`` gives the state before an event;
        the prev event itself is added when it is a state event), resolved together."""
        room = await self._timeline.room(pdu.room_id)
        assert room is not None
        states: list[dict[StateKey, str]] = []
        for prev_id in pdu.prev_event_ids:
            stored = await self._events.get_event(prev_id)
            if stored is not None and stored.state_group is not None:
                states.append(await self._state.get_state(stored.state_group))
                continue
            answer = await self._client.request(
                origin, "GET", f"/_matrix/federation/v1/state_ids/"
                f"{quote(pdu.room_id, safe='')}", query={"event_id": prev_id})
            ids = answer.get("pdu_ids") if isinstance(answer, dict) else None
            chain_ids = answer.get("auth_chain_ids") if isinstance(answer, dict) else None
            wanted = [e for e in [*(ids or []), *(chain_ids or []), prev_id]
                      if isinstance(e, str)]
            await self._fetch_events(origin, pdu.room_id, wanted, version)
            events = await self._timeline.get_pdus([e for e in ids or [] if isinstance(e, str)])
            state = {p.state_tuple: p.event_id for p in events.values() if p.is_state}
            prev = (await self._timeline.get_pdus([prev_id])).get(prev_id)
            if prev is not None and prev.is_state:
                state[prev.state_tuple] = prev.event_id
            states.append(state)
        return await self._incoming.resolve(room, states)

    async def _fetch_events(self, origin: str, room_id: str, event_ids: list[str],
                            version: RoomVersion) -> None:
        known = await self._events.get_events(event_ids)
        fetched: dict[str, PDU] = {}
        for event_id in event_ids:
            if event_id in known or event_id in fetched:
                continue
            try:
                answer = await self._client.request(
                    origin, "GET", f"/_matrix/federation/v1/event/{quote(event_id, safe='')}")
            except FederationError as e:
                log.info("could not fetch %s from %s: %s", event_id, origin, e)
                continue
            raw = answer.get("pdus") if isinstance(answer, dict) else None
            good, _ = await self._validator.validate_many(raw if isinstance(raw, list) else [],
                                                          version)
            fetched.update({e: p for e, p in good.items() if e == event_id})
        await self._store_checked_outliers(room_id, fetched)
