"""The timeline: the single ``append()`` every local event goes through.

Design, "How a request flows": take the room's lock, build the event on the current forward
extremities and state, hash and sign it, check the authorization rules against the current
state, update the in-memory room state, then persist everything the event changes in one
transaction, advance the stream and wake the notifier. Room state is cached per room in memory,
so a message costs no state read from the database.

The lock covers building, not writing: the event goes to the room's ``RoomWriter`` and the next
event is built on it while it is written, so a busy room commits many events per transaction
(see ``room_writer``). Events that need a new state group first wait for the room's queued
writes, because the group is stored as a delta over one that must already be stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from myelin.core.auth import AuthError, auth_types_for_event, check_auth, redaction_applies
from myelin.core.canonical_json import CanonicalJSONError
from myelin.core.event_format import EventFormatError, EventTooLargeError, validate_pdu
from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import RoomVersion
from myelin.errors import MatrixError, bad_json, forbidden, too_large
from myelin.services.notifier import Notifier
from myelin.services.rooms.builder import EventBuilder
from myelin.services.rooms.event_cache import EventCache
from myelin.services.rooms.membership_cache import user_key
from myelin.services.rooms.room_writer import QueuedEvent, RoomWriter
from myelin.services.single_flight import SingleFlight
from myelin.services.stream_changes import StreamChanges
from myelin.storage.database import Database, Statement
from myelin.storage.persistence import (
    ClientTransaction,
    Membership,
    NewRoom,
    PersistEvent,
    event_statements,
    event_write,
    persist_event,
)
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.state import StateGroupWrite, StateStore

_RECENT_ALLOCATIONS = 10_000  # event positions remembered for rooms_changed

log = logging.getLogger("myelin.rooms")

CREATE: StateKey = ("m.room.create", "")
MAX_PREV_EVENTS = 10
_RECENT_TRANSACTIONS = 4096
ClientTxnKey = tuple[str, str, str, str]  # user ID, device ID, endpoint, transaction ID


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class RoomState:
    """What the next local event of a room is built on."""

    room_id: str
    room_version: RoomVersion
    state: dict[StateKey, str]
    state_group: int | None
    extremities: list[str]
    depth: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    writer: RoomWriter | None = None  # made on the first local event
    # A queued write failed: the fields above include events that were never stored, so they
    # are reloaded from the database before anything is built on them (``generation`` + 1).
    stale: bool = False
    generation: int = 0


class Timeline:
    def __init__(
        self,
        db: Database,
        events: EventStore,
        state: StateStore,
        builder: EventBuilder,
        notifier: Notifier,
        stream: StreamPositions,
        state_groups: StreamPositions,
    ) -> None:
        self._db = db
        self._events = events
        self._state = state
        self._builder = builder
        self._notifier = notifier
        self._stream = stream
        self.stream = stream  # read by the services that serve the event stream
        # Where someone's room membership changed (key "*": anywhere; a room ID: that room;
        # membership_cache.user_key(user): that user):
        # lets /sync skip the device-list queries that only membership changes can answer,
        # and the membership caches (JoinedMembers, UserMemberships) keep their lists until
        # a change.
        self.membership_changes = StreamChanges(stream.current)
        # (position, room) of the newest allocations, so /sync finds the rooms with news in
        # (since, now] without a query; complete for windows after _recent_complete_after.
        self._recent: deque[tuple[int, str]] = deque()
        self._recent_complete_after = stream.current
        self._state_groups = state_groups
        self._rooms: dict[str, RoomState] = {}
        self._event_cache = EventCache()
        # Called with each event persisted here and its stream position, after the notifier;
        # a callback must only schedule work (push evaluation), never block or raise.
        self.on_persisted: list[Callable[[PDU, int], None]] = []
        # Backfilled events count down from the lowest stream position (see commit_received).
        self._oldest_position: int | None = None
        self._history_lock = asyncio.Lock()
        self._create_lock = asyncio.Lock()
        # A client's retransmission that arrives while the original is still being written
        # (or just after) gets the original's event; the database's unique key would
        # otherwise fail the whole batch the duplicate is written in.
        self._txns_in_flight = SingleFlight()
        self._txns_recent: OrderedDict[ClientTxnKey, PDU] = OrderedDict()

    # -- reading --

    async def get_pdus(self, event_ids: list[str]) -> dict[str, PDU]:
        """Events by ID, from the in-memory cache where possible."""
        found: dict[str, PDU] = {}
        missing = []
        for event_id in event_ids:
            pdu = self._event_cache.get(event_id)
            if pdu is None:
                missing.append(event_id)
            else:
                found[event_id] = pdu
        if missing:
            for event_id, stored in (await self._events.get_events(missing)).items():
                found[event_id] = stored.pdu
                self._cache_pdu(stored.pdu)
        return found

    def _cache_pdu(self, pdu: PDU) -> None:
        self._event_cache.put(pdu)

    async def room(self, room_id: str) -> RoomState | None:
        """The room's current state as the next local event sees it; None if unknown here."""
        room = self._rooms.get(room_id)
        if room is not None:
            return room
        version = await self._events.get_room_version(room_id)
        if version is None:
            return None
        room = RoomState(room_id, version, {}, None, [], 0)
        await self._load_stored_state(room)
        return self._rooms.setdefault(room_id, room)

    async def _load_stored_state(self, room: RoomState) -> None:
        extremities = await self._events.get_forward_extremities(room.room_id)
        stored = await self._events.get_events(extremities)
        groups = {e.state_group for e in stored.values()}
        room.state = await self._state.get_current_state(room.room_id)
        room.state_group = groups.pop() if len(groups) == 1 else None
        room.extremities = extremities
        room.depth = max((e.pdu.depth for e in stored.values()), default=0)

    async def settle(self, room: RoomState) -> None:
        """Under ``room.lock``: make ``room`` what the database holds, for code that reads
        the stored DAG or state (events from other servers): wait for queued writes, and
        reload the room if one of them failed."""
        if room.writer is not None:
            await room.writer.drain()
        await self._reload_if_stale(room)

    async def _reload_if_stale(self, room: RoomState) -> None:
        if not room.stale:
            return
        if await self._events.get_room_version(room.room_id) is None:  # its creation failed
            if self._rooms.get(room.room_id) is room:
                del self._rooms[room.room_id]
            raise forbidden("You are not in this room")
        await self._load_stored_state(room)
        room.generation += 1
        room.stale = False

    async def state_events(self, room: RoomState, keys: list[StateKey]) -> dict[StateKey, PDU]:
        ids = {key: room.state[key] for key in keys if key in room.state}
        pdus = await self.get_pdus(list(ids.values()))
        return {key: pdus[event_id] for key, event_id in ids.items() if event_id in pdus}

    # -- writing --

    async def create_room(
        self, room_version: RoomVersion, room_id: str | None, creator: str,
        content: Mapping[str, Any],
    ) -> tuple[RoomState, PDU]:
        """Persist a new room's create event; ``room_id`` is None for v12 (derived from it).

        A v12 room ID is the create event's hash, so two identical requests in the same
        millisecond would found the same room: the second one then gets a later timestamp."""
        async with self._create_lock:
            for delay in range(10):
                pdu = self._build(room_version, room_id, creator, "m.room.create", content, "",
                                  prev=[], auth=[], depth=1, ts_offset=delay)
                taken = pdu.room_id in self._rooms or \
                    await self._events.get_room_version(pdu.room_id) is not None
                if not taken:
                    break
                if room_id is not None:
                    raise MatrixError(400, "M_ROOM_IN_USE", "Room ID already in use")
            else:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room ID already in use")
            room = RoomState(pdu.room_id, room_version, {}, None, [], 0)
            self._rooms[pdu.room_id] = room
        async with room.lock:
            written = await self._authorise_and_queue(room, pdu, {CREATE: pdu}, new_room=NewRoom(
                pdu.room_id, room_version.identifier, creator, pdu.origin_server_ts))
        await written
        return room, pdu

    async def append(
        self,
        room_id: str,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        redacts: str | None = None,
        client_txn: ClientTxnKey | None = None,
        countersign: Callable[[PDU, RoomState], Awaitable[PDU]] | None = None,
    ) -> PDU:
        """Create, authorise and persist a local event; 403 if the auth rules refuse it.

        ``client_txn`` is (user_id, device_id, endpoint, txn_id): the event and the transaction
        ID are stored together, so a retransmission finds the ID exactly when the event exists.
        """
        if client_txn is None:
            return await self._append(room_id, sender, event_type, content, state_key,
                                      redacts, None, countersign)
        if client_txn in self._txns_recent:
            return self._txns_recent[client_txn]
        pdu = await self._txns_in_flight.run(client_txn, lambda: self._append(
            room_id, sender, event_type, content, state_key, redacts, client_txn, countersign))
        self._txns_recent[client_txn] = pdu
        if len(self._txns_recent) > _RECENT_TRANSACTIONS:
            self._txns_recent.popitem(last=False)
        return pdu

    async def _append(
        self, room_id: str, sender: str, event_type: str, content: Mapping[str, Any],
        state_key: str | None, redacts: str | None, client_txn: ClientTxnKey | None,
        countersign: Callable[[PDU, RoomState], Awaitable[PDU]] | None,
    ) -> PDU:
        room = await self.room(room_id)
        if room is None:
            # Same answer as for a room the sender is not in: existence is not disclosed.
            raise forbidden("You are not in this room")
        async with room.lock:
            await self._reload_if_stale(room)
            prev_ids = room.extremities[-MAX_PREV_EVENTS:]
            prevs = await self.get_pdus(prev_ids)
            probe = PDU({"type": event_type, "sender": sender, "content": dict(content),
                         **({"state_key": state_key} if state_key is not None else {})},
                        room.room_version, event_id="$probe")
            keys = auth_types_for_event(probe)
            auth_state = await self.state_events(room, [CREATE, *keys])
            auth_events = [auth_state[k] for k in keys if k in auth_state]
            depth = min(max((p.depth for p in prevs.values()), default=0) + 1, 2**63 - 1)
            pdu = self._build(room.room_version, room_id, sender, event_type, content,
                              state_key, prev=[prevs[i] for i in prev_ids if i in prevs],
                              auth=auth_events, depth=depth, redacts=redacts)
            response = None
            if client_txn is not None:
                response = ClientTransaction(*client_txn, response=b"", created_ts=now_ms())
            if countersign is not None:
                # An invite of another server's user carries that server's signature too
                # (server-server API, "Inviting to a room"); it is checked before storing.
                check_auth(pdu, auth_state)
                pdu = await countersign(pdu, room)
            written = await self._authorise_and_queue(room, pdu, auth_state,
                                                      client_txn=response)
        await written
        return pdu

    def _build(self, room_version: RoomVersion, room_id: str | None, sender: str,
               event_type: str, content: Mapping[str, Any], state_key: str | None, *,
               prev: list[PDU], auth: list[PDU], depth: int,
               redacts: str | None = None, ts_offset: int = 0) -> PDU:
        if room_version.redacts_in_content and redacts is not None:
            content = {**content, "redacts": redacts}
        try:
            pdu = self._builder.build(
                room_version, room_id=room_id, event_type=event_type, sender=sender,
                content=content, prev_events=prev, auth_events=auth, depth=depth,
                origin_server_ts=now_ms() + ts_offset, state_key=state_key,
                redacts=redacts)
            validate_pdu(pdu.data, room_version)
        except CanonicalJSONError as e:
            raise bad_json(f"Event content is not valid canonical JSON: {e}") from None
        except EventTooLargeError as e:
            raise too_large(f"Event too large: {e}") from None
        except EventFormatError as e:
            raise bad_json(str(e)) from None
        return pdu

    async def _authorise_and_queue(
        self, room: RoomState, pdu: PDU, auth_state: Mapping[StateKey, PDU], *,
        new_room: NewRoom | None = None, client_txn: ClientTransaction | None = None,
    ) -> asyncio.Future[None]:
        """Under ``room.lock``: authorise ``pdu``, make it the room's head in memory and queue
        its write. Returns what resolves once it is committed (or fails with the write)."""
        try:
            check_auth(pdu, auth_state)
        except AuthError as e:
            raise forbidden(f"{e.message} (auth rule {e.rule})") from None
        applies_redaction = False
        if pdu.type == "m.room.redaction" and pdu.redacts is not None:
            original = (await self.get_pdus([pdu.redacts])).get(pdu.redacts)
            applies_redaction = original is not None and original.room_id == room.room_id \
                and redaction_applies(pdu, original, auth_state)
        writer = self._writer_of(room)
        needs_group = pdu.is_state or room.state_group is None
        if needs_group:
            await writer.drain()  # the new group is a delta over a group that must be stored
            await self._reload_if_stale(room)
        changes: dict[StateKey, str | None] = {}
        memberships: dict[str, Membership] = {}
        stream = self._allocate(room.room_id)
        try:
            group, write = room.state_group, None
            if needs_group:
                if pdu.is_state:
                    changes[pdu.state_tuple] = pdu.event_id
                group = self._state_groups.allocate()
                self._state_groups.finish(group)
                # Without a group for the current state (it was resolved across several
                # forward extremities), the new group is a full snapshot.
                entries = changes if room.state_group is not None else {**room.state, **changes}
                write = await self._state.plan_group(group, room.room_id, room.state_group,
                                                     entries)
                if pdu.type == "m.room.member" and pdu.membership is not None:
                    memberships[pdu.state_tuple[1]] = Membership(pdu.membership, pdu.event_id,
                                                                 stream)
                    self._mark_membership(stream, room.room_id, pdu.state_tuple[1])
            if client_txn is not None:
                body = b'{"event_id":"' + pdu.event_id.encode() + b'"}'
                client_txn = ClientTransaction(client_txn.user_id, client_txn.device_id,
                                               client_txn.endpoint, client_txn.txn_id, body,
                                               client_txn.created_ts)
            statements = event_write(self._db.engine, PersistEvent(
                pdu, stream, state_group=group, new_state_group=write,
                current_state_changes=changes, membership_changes=memberships,
                extremities_replaced=list(room.extremities), new_room=new_room,
                client_transaction=client_txn, applies_redaction=applies_redaction))
        except BaseException:
            self._stream.finish(stream)
            raise
        self._cache_pdu(pdu)
        room.state.update({k: v for k, v in changes.items() if v is not None})
        room.state_group = group
        room.extremities = [pdu.event_id]
        room.depth = pdu.depth
        if write is not None:
            self._state.remember_written(write, room.state)
        users = [pdu.state_key] if pdu.type == "m.room.member" and pdu.state_key else []
        queued = QueuedEvent(pdu, statements, stream, room.generation, users)
        writer.submit(queued)
        return queued.written

    def _writer_of(self, room: RoomState) -> RoomWriter:
        if room.writer is None:
            room.writer = RoomWriter(
                self._db, on_written=lambda events: self._written(room, events),
                on_failed=lambda events, error: self._write_failed(room, events, error))
        return room.writer

    def _written(self, room: RoomState, events: list[QueuedEvent]) -> None:
        """Committed: readers may see the events now, in order, with one wake-up for all."""
        for event in events:
            self._stream.finish(event.stream)
        users = [user for event in events for user in event.notify_users]
        self._notifier.announce(self._stream.current, rooms=[room.room_id], users=users)
        for event in events:
            for callback in self.on_persisted:
                callback(event.pdu, event.stream)
            event.settle()

    def _write_failed(self, room: RoomState, events: list[QueuedEvent],
                      error: BaseException) -> None:
        """Never stored: forget the events and rebuild the room from the database."""
        log.error("persisting %d event(s) of %s failed: %s", len(events), room.room_id, error)
        room.stale = True
        for event in events:
            self._stream.finish(event.stream)
            self._event_cache.discard(event.pdu.event_id)
            event.settle(error)

    # -- events from other servers --

    async def commit_received(
        self, room: RoomState, pdu: PDU, state_before: Mapping[StateKey, str], *,
        rejected_reason: str | None, soft_failed: bool,
        resolve_current: Callable[[list[str], Mapping[StateKey, str]],
                                  Awaitable[dict[StateKey, str]]],
        historical: bool = False, replaces_outlier: bool = False,
    ) -> int:
        """Persist an event another server sent, once its checks decided its fate; the caller
        holds ``room.lock``. ``resolve_current(others, state_after)`` gives the room's state
        when the event leaves other forward extremities beside it: theirs resolved with the
        state after this event, which is not stored yet when it is called. ``historical``
        (backfill): the event goes before everything known, at a negative stream position, so
        /sync never shows it as new, and it changes neither current state nor forward
        extremities.
        Returns its stream position."""
        await self.settle(room)  # normally already done by the caller; cheap when idle
        accepted = rejected_reason is None
        in_timeline = accepted and not soft_failed and not historical
        if historical:
            return await self._commit_historical(room, pdu, state_before, rejected_reason,
                                                 replaces_outlier)
        state_after = dict(state_before)
        if accepted and pdu.is_state:
            state_after[pdu.state_tuple] = pdu.event_id
        stream = self._allocate(room.room_id)
        try:
            group, write = await self._group_for(room.room_id, pdu, state_after)
            changes: dict[StateKey, str | None] = {}
            memberships: dict[str, Membership] = {}
            prevs = set(pdu.prev_event_ids)
            replaced = [e for e in room.extremities if e in prevs]
            extremities = room.extremities
            current = room.state
            if in_timeline:
                extremities = [e for e in room.extremities if e not in prevs] + [pdu.event_id]
                if len(extremities) == 1:
                    current = state_after
                else:
                    current = await resolve_current(extremities[:-1], state_after)
                changes = {k: v for k, v in current.items() if room.state.get(k) != v}
                changes.update({k: None for k in room.state if k not in current})
                member_ids = {k[1]: v for k, v in changes.items()
                              if k[0] == "m.room.member" and v is not None}
                member_pdus = await self.get_pdus(
                    [e for e in member_ids.values() if e != pdu.event_id])
                member_pdus[pdu.event_id] = pdu
                for user_id, event_id in member_ids.items():
                    member = member_pdus.get(event_id)
                    if member is not None and member.membership is not None:
                        memberships[user_id] = Membership(member.membership, event_id, stream)
                        self._mark_membership(stream, pdu.room_id, user_id)
            await persist_event(self._db, PersistEvent(
                pdu, stream, rejected_reason=rejected_reason, soft_failed=soft_failed,
                state_group=group, new_state_group=write, current_state_changes=changes,
                membership_changes=memberships, extremities_replaced=replaced,
                replaces_outlier=replaces_outlier))
        finally:
            self._stream.finish(stream)
        self._cache_pdu(pdu)
        if write is not None:
            self._state.remember_written(write, state_after)
        if not in_timeline:
            return stream
        room.state = dict(current)
        room.extremities = extremities
        room.state_group = group if len(extremities) == 1 else None
        room.depth = max(room.depth, pdu.depth)
        users = [k[1] for k in changes if k[0] == "m.room.member"]
        self._notifier.announce(self._stream.current, rooms=[room.room_id], users=users)
        for callback in self.on_persisted:
            callback(pdu, stream)
        return stream

    async def _commit_historical(self, room: RoomState, pdu: PDU,
                                 state_before: Mapping[StateKey, str],
                                 rejected_reason: str | None, replaces_outlier: bool) -> int:
        state_after = dict(state_before)
        if rejected_reason is None and pdu.is_state:
            state_after[pdu.state_tuple] = pdu.event_id
        async with self._history_lock:
            if self._oldest_position is None:
                lowest = await self._db.fetchval("SELECT MIN(stream_ordering) FROM events")
                self._oldest_position = min(int(lowest or 0), 0)
            self._oldest_position -= 1
            position = self._oldest_position
            group, write = await self._group_for(room.room_id, pdu, state_after)
            await persist_event(self._db, PersistEvent(
                pdu, position, rejected_reason=rejected_reason, state_group=group,
                new_state_group=write, historical=True, replaces_outlier=replaces_outlier))
        self._cache_pdu(pdu)
        if write is not None:
            self._state.remember_written(write, state_after)
        return position

    async def _group_for(self, room_id: str, pdu: PDU, state: Mapping[StateKey, str],
                         ) -> tuple[int, StateGroupWrite | None]:
        """A state group holding ``state``: the first prev event's group when unchanged,
        else a new one stored as a delta over it (or a full snapshot)."""
        base_group = None
        if pdu.prev_event_ids:
            stored = await self._events.get_event(pdu.prev_event_ids[0])
            base_group = stored.state_group if stored is not None else None
        group = self._state_groups.allocate()
        self._state_groups.finish(group)
        if base_group is None:
            return group, await self._state.plan_group(group, room_id, None, dict(state))
        base = await self._state.get_state(base_group)
        delta: dict[StateKey, str | None] = {k: v for k, v in state.items() if base.get(k) != v}
        delta.update({k: None for k in base if k not in state})
        if not delta:
            return base_group, None
        return group, await self._state.plan_group(group, room_id, base_group, delta)

    def _allocate(self, room_id: str) -> int:
        """A stream position for an event of ``room_id``, remembered for ``rooms_changed``."""
        stream = self._stream.allocate()
        self._recent.append((stream, room_id))
        if len(self._recent) > _RECENT_ALLOCATIONS:
            self._recent_complete_after = self._recent.popleft()[0]
        return stream

    def _mark_membership(self, stream: int, room_id: str, user_id: str) -> None:
        """Before a membership write: for /sync's device lists (any room) and for the
        membership lists kept in memory (this room's members, this user's rooms)."""
        self.membership_changes.mark(stream)
        self.membership_changes.mark(stream, room_id)
        self.membership_changes.mark(stream, user_key(user_id))

    def rooms_changed(self, after: int, upto: int) -> set[str] | None:
        """Rooms with an event at a position in (after, upto], from memory; None when the
        window reaches back beyond what is remembered (ask the database)."""
        if after < self._recent_complete_after:
            return None
        rooms = set()
        for stream, room_id in reversed(self._recent):
            if stream <= after:
                break  # positions are appended in increasing order
            if stream <= upto:
                rooms.add(room_id)
        return rooms

    async def store_outliers(
        self, pdus: list[PDU], *, new_room: NewRoom | None = None) -> None:
        """Store events known only as auth events or state of a room being joined: they are
        not in the timeline (no stream visibility, no state) until something links them."""
        stored = await self._events.get_events([p.event_id for p in pdus])
        fresh = [p for p in pdus if p.event_id not in stored]
        if not fresh and new_room is None:
            return
        statements = []
        positions = []
        try:
            for index, pdu in enumerate(fresh):
                stream = self._allocate(pdu.room_id)
                positions.append(stream)
                statements += event_statements(PersistEvent(
                    pdu, stream, outlier=True,
                    new_room=new_room if index == 0 else None))
            await self._db.write_batch(statements)
        finally:
            for stream in positions:
                self._stream.finish(stream)
        for pdu in fresh:
            self._cache_pdu(pdu)

    async def store_remote_membership(self, pdu: PDU, *, new_room: NewRoom | None) -> None:
        """A membership event of a room this server is not in (an invite from another
        server): kept as an outlier, with the user's membership, so /sync shows it."""
        stream = self._allocate(pdu.room_id)
        try:
            statements = event_statements(PersistEvent(pdu, stream, outlier=True,
                                                       new_room=new_room))
            statements.append(Statement(
                "INSERT INTO room_memberships (room_id, user_id, membership, event_id,"
                " stream_ordering) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, user_id)"
                " DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id,"
                " stream_ordering = excluded.stream_ordering, forgotten = FALSE",
                (pdu.room_id, pdu.state_key, pdu.membership, pdu.event_id, stream)))
            self._mark_membership(stream, pdu.room_id, pdu.state_key or "")
            await self._db.write_batch(statements)
        finally:
            self._stream.finish(stream)
        self._cache_pdu(pdu)
        self._notifier.announce(self._stream.current, rooms=[pdu.room_id],
                                users=[pdu.state_key or ""])
