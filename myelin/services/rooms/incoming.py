"""Events from other servers entering a room's DAG: the authorisation steps of the server-server
API's "Checks performed on receipt of a PDU" (4: against its auth events, 5: against the state
before it, 6: against the current state), then the same persistence as local events.

Steps 1-3 (format, signatures, hashes) belong to the federation layer, which also fetches
whatever the event references and this server lacks: here every auth event and every prev
event is already stored, or the caller passes the state before the event it obtained from
another server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from myelin.core.auth import AuthError, auth_types_for_event, check_auth
from myelin.core.events import PDU, StateKey
from myelin.core.state_res import resolve_state
from myelin.services.rooms.timeline import CREATE, RoomState, Timeline
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.state import StateMap, StateStore

log = logging.getLogger("myelin.federation")


class MissingEvents(Exception):
    """Events the checks need are not stored here; the caller should fetch them first."""

    def __init__(self, event_ids: Iterable[str]) -> None:
        self.event_ids = sorted(set(event_ids))
        super().__init__(f"missing events: {', '.join(self.event_ids[:5])}")


@dataclass(frozen=True)
class Outcome:
    event_id: str
    rejected_reason: str | None = None
    soft_failed: bool = False

    @property
    def accepted(self) -> bool:
        return self.rejected_reason is None


class IncomingEvents:
    def __init__(self, timeline: Timeline, events: EventStore, state: StateStore) -> None:
        self._timeline = timeline
        self._events = events
        self._state = state

    async def receive(self, pdu: PDU, *, state_before: StateMap | None = None,
                      joining: bool = False, historical: bool = False) -> Outcome:
        """Check and store one event of a room this server takes part in.

        ``joining``: our own join of a room whose state we just received; that state is the
        current state it is checked against. Already stored: returns its stored outcome."""
        stored = await self._events.get_event(pdu.event_id)
        if stored is not None and not stored.outlier:
            return Outcome(pdu.event_id, stored.rejected_reason)
        # An outlier (known so far only as an auth event or state) joins the timeline now.
        room = await self._timeline.room(pdu.room_id)
        if room is None:
            raise MissingEvents([pdu.room_id])
        rejected = await self._check_auth_events(room, pdu)
        async with room.lock:
            # Local events still being written are not in the stored DAG the checks read.
            await self._timeline.settle(room)
            if state_before is None:
                state_before = await self.state_before(room, pdu)
            soft_failed = False
            if rejected is None:
                rejected = await self._check_against(room, pdu, state_before, "state before it")
            if rejected is None and not joining and not historical:
                soft_failed = await self._check_against(room, pdu, room.state,
                                                        "current state") is not None
                if soft_failed:
                    log.info("soft-failed %s from %s", pdu.event_id, pdu.sender)
            elif rejected is not None:
                log.info("rejected %s from %s: %s", pdu.event_id, pdu.sender, rejected)

            async def resolve_current(others: list[str], state_after: Mapping[StateKey, str],
                                      ) -> dict[StateKey, str]:
                # Server-server API, "Room State Resolution": the current state is the
                # resolution of the states after every forward extremity.
                return await self.resolve(room, [*await self._states_after(others),
                                                 dict(state_after)])

            await self._timeline.commit_received(
                room, pdu, state_before, rejected_reason=rejected, soft_failed=soft_failed,
                resolve_current=resolve_current, historical=historical,
                replaces_outlier=stored is not None)
        return Outcome(pdu.event_id, rejected, soft_failed)

    async def state_before(self, room: RoomState, pdu: PDU) -> StateMap:
        """The state before an event whose prev events are all stored with their state."""
        return await self.resolve(room, await self._states_after(pdu.prev_event_ids))

    async def _states_after(self, event_ids: list[str]) -> list[StateMap]:
        stored = await self._events.get_events(event_ids)
        missing = [e for e in event_ids if e not in stored or stored[e].state_group is None]
        if missing:
            raise MissingEvents(missing)
        states = []
        for event_id in event_ids:
            event = stored[event_id]
            group = event.state_group
            assert group is not None
            state = await self._state.get_state(group)
            states.append(state)
        return states

    async def resolve(self, room: RoomState, states: list[StateMap]) -> StateMap:
        """Server-server API, "Room State Resolution", with the room version's algorithm."""
        distinct = {tuple(sorted(s.items())): s for s in states}
        if len(distinct) == 1:
            return dict(states[0])
        events = await self.with_auth_chains(
            {event_id for state in states for event_id in state.values()})
        return resolve_state(room.room_version, list(distinct.values()), events)

    async def with_auth_chains(self, event_ids: Iterable[str]) -> dict[str, PDU]:
        """The events and their whole auth chains, as state resolution needs them."""
        found: dict[str, PDU] = {}
        pending = set(event_ids)
        while pending:
            batch = await self._timeline.get_pdus(sorted(pending))
            found.update(batch)
            pending = {a for pdu in batch.values() for a in pdu.auth_event_ids
                       if a not in found}
            pending -= set(batch)  # unknown ones stay out: state res names them if it needs
        return found

    async def _check_auth_events(self, room: RoomState, pdu: PDU) -> str | None:
        """Step 4: authorised by its own auth events, which must be stored, not rejected, of
        the types the auth events selection allows and without duplicates."""
        stored = await self._events.get_events(pdu.auth_event_ids)
        missing = [e for e in pdu.auth_event_ids if e not in stored]
        if missing:
            raise MissingEvents(missing)
        allowed = {CREATE, *auth_types_for_event(pdu)}
        auth_state: dict[StateKey, PDU] = {}
        for event_id in pdu.auth_event_ids:
            event = stored[event_id]
            if event.rejected_reason is not None:
                return f"auth event {event_id} was rejected"
            if event.pdu.room_id != pdu.room_id:
                return f"auth event {event_id} is in another room"
            key = event.pdu.state_tuple
            if not event.pdu.is_state or key not in allowed:
                return f"auth event {event_id} ({key[0]}) is not one it may cite"
            if key in auth_state:
                return f"two auth events for {key}"
            auth_state[key] = event.pdu
        if room.room_version.room_id_from_create_event and pdu.type != "m.room.create":
            # Room version 12: the create event is implied by the room ID, never listed.
            create_id = implied_create_event_id(pdu.room_id)
            create = (await self._timeline.get_pdus([create_id])).get(create_id)
            if create is None:
                raise MissingEvents([create_id])
            auth_state[CREATE] = create
        return _auth_failure(pdu, auth_state)

    async def _check_against(self, room: RoomState, pdu: PDU, state: Mapping[StateKey, str],
                             what: str) -> str | None:
        """Steps 5 and 6: the auth rules with the auth events picked from ``state``."""
        keys = [CREATE, *auth_types_for_event(pdu)]
        ids = {key: state[key] for key in keys if key in state}
        pdus = await self._timeline.get_pdus(list(ids.values()))
        auth_state = {key: pdus[event_id] for key, event_id in ids.items() if event_id in pdus}
        failure = _auth_failure(pdu, auth_state)
        return None if failure is None else f"{failure} (against the {what})"


def implied_create_event_id(room_id: str) -> str:
    """Room version 12: the room ID is the create event's ID with "!" for "$"."""
    return "$" + room_id[1:]


def _auth_failure(pdu: PDU, auth_state: Mapping[StateKey, PDU]) -> str | None:
    try:
        check_auth(pdu, auth_state)
    except AuthError as e:
        return f"{e.message} (auth rule {e.rule})"
    return None
