"""What other servers may read of a room: single events, the state at an event, auth chains,
missing events and history (server-server API, "Retrieving events", "Backfilling and
retrieving missing events", "Retrieving event authorisation information").

Only servers with a member in the room get answers, and never about another room's events.
Events the asking server may not see by the room's history visibility are sent redacted
(``Visibility.is_visible_to_server``), as Synapse does, so its view of the DAG stays whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from myelin.core.events import StateKey
from myelin.core.redaction import redact
from myelin.errors import MatrixError, forbidden, not_found
from myelin.services.rooms.incoming import IncomingEvents, MissingEvents
from myelin.services.rooms.timeline import RoomState, Timeline
from myelin.services.rooms.visibility import Visibility
from myelin.storage.stores.events import EventStore, StoredEvent
from myelin.storage.stores.state import StateStore

MAX_BACKFILL = 100
MAX_MISSING = 50


class RoomData:
    def __init__(self, server_name: str, timeline: Timeline, incoming: IncomingEvents,
                 events: EventStore, state: StateStore, visibility: Visibility) -> None:
        self._server_name = server_name
        self._visibility = visibility
        self._timeline = timeline
        self._incoming = incoming
        self._events = events
        self._state = state

    def _wrap(self, pdus: Iterable[dict[str, Any]]) -> dict[str, Any]:
        return {"origin": self._server_name, "origin_server_ts": int(time.time() * 1000),
                "pdus": list(pdus)}

    async def _as_seen_by(self, origin: str, events: Iterable[StoredEvent],
                          ) -> list[dict[str, Any]]:
        """The events as ``origin`` may have them: whole, or redacted where the history
        visibility hides them from every user of that server."""
        out = []
        for stored in events:
            pdu = stored.pdu
            visible = await self._visibility.is_visible_to_server(origin, stored)
            out.append(pdu.data if visible else redact(pdu.data, pdu.room_version))
        return out

    async def check_origin_in_room(self, origin: str, room_id: str) -> RoomState:
        room = await self._timeline.room(room_id)
        if room is None:
            raise not_found("Unknown room")
        members = await self._state.joined_members(room_id)
        if not any(m.endswith(":" + origin) for m in members):
            raise forbidden("Your server is not in this room")
        return room

    async def event(self, origin: str, event_id: str) -> dict[str, Any]:
        stored = await self._events.get_event(event_id)
        if stored is None:
            raise not_found("Unknown event")
        await self.check_origin_in_room(origin, stored.pdu.room_id)
        return self._wrap(await self._as_seen_by(origin, [stored]))

    async def state_ids(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        room = await self.check_origin_in_room(origin, room_id)
        state = await self._state_before(room, event_id)
        chain = await self._incoming.with_auth_chains(state.values())
        return {"pdu_ids": sorted(state.values()),
                "auth_chain_ids": sorted(set(chain) - set(state.values()))}

    async def state(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        room = await self.check_origin_in_room(origin, room_id)
        state = await self._state_before(room, event_id)
        pdus = await self._timeline.get_pdus(list(state.values()))
        chain = await self._incoming.with_auth_chains(state.values())
        return {"pdus": [p.data for p in pdus.values()],
                "auth_chain": [p.data for e, p in chain.items() if e not in pdus]}

    async def event_auth(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        await self.check_origin_in_room(origin, room_id)
        stored = await self._events.get_event(event_id)
        if stored is None or stored.pdu.room_id != room_id:
            raise not_found("Unknown event")
        chain = await self._incoming.with_auth_chains(stored.pdu.auth_event_ids)
        return {"auth_chain": [p.data for p in chain.values()]}

    async def _state_before(self, room: RoomState, event_id: str) -> dict[StateKey, str]:
        """"The state of the room at the event": before it, as Synapse answers too."""
        stored = await self._events.get_event(event_id)
        if stored is None or stored.pdu.room_id != room.room_id:
            raise not_found("Unknown event")
        pdu = stored.pdu
        if not pdu.prev_event_ids:
            return {}
        try:
            return await self._incoming.state_before(room, pdu)
        except MissingEvents:
            pass
        if stored.state_group is None:
            raise not_found("The state at this event is not known here")
        state = await self._state.get_state(stored.state_group)
        if pdu.is_state and state.get(pdu.state_tuple) == pdu.event_id:
            # Its prev events are not stored here (we joined after them): undo the event with
            # the previous holder of its key among its auth events, if it cites one.
            auths = await self._timeline.get_pdus(pdu.auth_event_ids)
            previous = [a for a in auths.values() if a.state_tuple == pdu.state_tuple]
            if previous:
                state[pdu.state_tuple] = previous[0].event_id
            else:
                del state[pdu.state_tuple]
        return state

    async def missing_events(self, origin: str, room_id: str, body: dict[str, Any],
                             ) -> dict[str, Any]:
        """Walk back from ``latest_events`` along prev events, stopping at ``earliest_events``."""
        await self.check_origin_in_room(origin, room_id)
        earliest = set(_event_ids(body, "earliest_events"))
        latest = _event_ids(body, "latest_events")
        limit = max(0, min(_integer(body, "limit", 10), MAX_MISSING))
        min_depth = _integer(body, "min_depth", 0)
        seen = set(earliest) | set(latest)
        frontier = latest
        found: list[StoredEvent] = []
        while frontier and len(found) < limit:
            stored = await self._events.get_events(frontier)
            next_frontier: list[str] = []
            for event_id in frontier:
                event = stored.get(event_id)
                if event is None or event.pdu.room_id != room_id:
                    continue
                for prev in event.pdu.prev_event_ids:
                    if prev not in seen:
                        seen.add(prev)
                        next_frontier.append(prev)
            prevs = await self._events.get_events(next_frontier)
            for event_id in next_frontier:
                prev_event = prevs.get(event_id)
                if prev_event is not None and prev_event.pdu.depth >= min_depth \
                        and len(found) < limit:
                    found.append(prev_event)
            frontier = [e for e in next_frontier if e in prevs]
        found.sort(key=lambda e: (e.pdu.depth, e.pdu.event_id))
        return {"events": await self._as_seen_by(origin, found)}

    async def backfill(self, origin: str, room_id: str, start: list[str],
                       limit: int) -> dict[str, Any]:
        """Up to ``limit`` events at and before ``start``, breadth-first along prev events."""
        await self.check_origin_in_room(origin, room_id)
        limit = max(0, min(limit, MAX_BACKFILL))
        seen: set[str] = set()
        frontier = list(dict.fromkeys(start))
        found: list[StoredEvent] = []
        while frontier and len(found) < limit:
            stored = await self._events.get_events(frontier)
            next_frontier: list[str] = []
            for event_id in frontier:
                event = stored.get(event_id)
                if event is None or event_id in seen or event.pdu.room_id != room_id:
                    continue
                seen.add(event_id)
                if len(found) < limit:
                    found.append(event)
                next_frontier.extend(p for p in event.pdu.prev_event_ids if p not in seen)
            frontier = next_frontier
        return self._wrap(await self._as_seen_by(origin, found))


def _event_ids(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise MatrixError(400, "M_BAD_JSON", f"{key} must be a list of event IDs")
    return value


def _integer(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MatrixError(400, "M_BAD_JSON", f"{key} must be an integer")
    return value
