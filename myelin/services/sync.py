"""/sync (client-server API, "Syncing"): initial and incremental, long-polling.

A sync token is a position in the event stream ("s<stream_ordering>"), so it stays valid across
restarts. Per joined room the response holds the timeline since the token (the newest
``limit`` events, ``limited`` when more were skipped, ``prev_batch`` to paginate back) and the
state the client needs on top of what it had: the full state at the timeline's start for a
first sync or a newly joined room, the changes since the token for a limited timeline, and
nothing otherwise (every change is then in the timeline itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from myelin.core.events import PDU, StateKey
from myelin.errors import MatrixError
from myelin.services.account_data import AccountDataService
from myelin.services.e2e_keys import E2eKeyService
from myelin.services.ephemeral import EphemeralStream
from myelin.services.filtering import (
    Filter,
    effective_limit,
    event_matches,
    excludes_every_type,
    room_allowed,
)
from myelin.services.notifier import Notifier
from myelin.services.presence import PresenceService
from myelin.services.push_rules import PushRuleService
from myelin.services.receipts import ReceiptService
from myelin.services.rooms.client_format import (
    BundlerFactory,
    client_event,
    no_bundler,
    serve_events,
)
from myelin.services.rooms.membership_cache import UserMemberships
from myelin.services.rooms.timeline import Timeline
from myelin.services.rooms.visibility import Visibility
from myelin.services.to_device import ToDeviceService
from myelin.services.typing import TypingService
from myelin.services.unread import UnreadCounter
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.state import StateStore

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMEOUT_MS = 5 * 60 * 1000
# Client-server API, "Stripped state": what an invitee may see of a room before joining.
STRIPPED_STATE_TYPES = ("m.room.create", "m.room.name", "m.room.avatar", "m.room.topic",
                        "m.room.join_rules", "m.room.canonical_alias", "m.room.encryption")


def parse_sync_position(token: str) -> tuple[int, int]:
    """A sync token: "s<stream>_<typing>" (or the older "s<stream>")."""
    stream, _, typing = token[1:].partition("_") if token.startswith("s") else ("", "", "")
    if stream.isdigit() and len(stream) < 19 and (typing == "" or (typing.isdigit()
                                                                   and len(typing) < 19)):
        return int(stream), int(typing or 0)
    raise MatrixError(400, "M_INVALID_PARAM", f"Invalid sync token {token!r}")


def parse_sync_token(token: str) -> int:
    """The stream position of a sync token (what pagination and ``at`` need)."""
    return parse_sync_position(token)[0]


def topological_token(depth: int, stream: int) -> str:
    return f"t{depth}_{stream}"


@dataclass(frozen=True)
class SyncRequest:
    user_id: str
    device_id: str
    since: int | None
    since_ephemeral: int | None
    timeout_ms: int
    full_state: bool
    filter: Filter
    set_presence: str = "online"


class SyncService:
    def __init__(self, events: EventStore, state: StateStore, timeline: Timeline,
                 visibility: Visibility, notifier: Notifier, stream: StreamPositions,
                 account_data: AccountDataService, typing: TypingService,
                 receipts: ReceiptService, push_rules: PushRuleService,
                 unread: UnreadCounter, presence: PresenceService,
                 ephemeral: EphemeralStream, to_device: ToDeviceService,
                 e2e_keys: E2eKeyService, memberships: UserMemberships,
                 bundler_for: BundlerFactory = no_bundler) -> None:
        self._memberships = memberships
        self._to_device = to_device
        self._e2e = e2e_keys
        self._bundler_for = bundler_for
        self._presence = presence
        self._ephemeral = ephemeral
        self._push_rules = push_rules
        self._unread = unread
        self._account_data = account_data
        self._typing = typing
        self._receipts = receipts
        self._events = events
        self._state = state
        self._timeline = timeline
        self._visibility = visibility
        self._notifier = notifier
        self._stream = stream

    async def sync(self, request: SyncRequest) -> dict[str, Any]:
        deadline = time.monotonic() + min(max(request.timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
        since = request.since
        since_ephemeral = request.since_ephemeral
        if since_ephemeral is not None and since_ephemeral > self._ephemeral.position:
            since_ephemeral = None  # the server restarted since: send typing/presence afresh
        await self._presence.on_sync(request.user_id, request.set_presence)
        if since is not None:
            # The token proves this device received every to-device message up to `since`.
            await self._to_device.acknowledge(request.user_id, request.device_id, since)
        while True:
            now = self._stream.current
            # More than one batch pending: the whole sync (and next_batch) stops at the last
            # message delivered, so the next since= acknowledges only what was sent.
            to_device, now = await self._to_device.delivery(request.user_id, request.device_id,
                                                            now)
            ephemeral_now = self._ephemeral.position
            response, has_updates = await self._build(request, since, now, since_ephemeral,
                                                      ephemeral_now, to_device)
            remaining = deadline - time.monotonic()
            if has_updates or since is None or request.full_state or remaining <= 0:
                return response
            rooms = [r for r, m, _, _ in await self._memberships.get(request.user_id)
                     if m == "join"]
            if self._ephemeral.position != ephemeral_now:
                continue  # typing/presence changed while we built: no await until the wait
            if not await self._notifier.wait(request.user_id, rooms, now, remaining):
                return response

    async def _build(self, request: SyncRequest, since: int | None, now: int,
                     since_ephemeral: int | None, ephemeral_now: int,
                     to_device: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        join: dict[str, Any] = {}
        invite: dict[str, Any] = {}
        knock: dict[str, Any] = {}
        leave: dict[str, Any] = {}
        changed_rooms: set[str] = set()
        if since is not None:
            remembered = self._timeline.rooms_changed(since, now)
            changed_rooms = remembered if remembered is not None else \
                await self._events.get_rooms_changed(since, now)
        global_data, room_data = await self._account_data.changes(request.user_id, since, now)
        if since is None:
            # The ruleset as the server computes it now (defaults merged with the user's
            # changes), not a stored snapshot that newer default rules would outdate.
            global_data = [e for e in global_data if e["type"] != "m.push_rules"]
            global_data.append({"type": "m.push_rules",
                                "content": await self._push_rules.rulesets_json(request.user_id)})
        global_data = [e for e in global_data if event_matches(request.filter.account_data, e)]
        room_data = {room: kept for room, events in room_data.items()
                     if (kept := [e for e in events
                                  if event_matches(request.filter.room.account_data, e)])}
        changed_rooms |= set(room_data)
        room_filter = request.filter.room
        memberships = await self._memberships.get(request.user_id)
        joined = [r for r, m, _, _ in memberships if m == "join" and room_allowed(room_filter, r)]
        ephemeral: dict[str, list[dict[str, Any]]] = {}
        if not excludes_every_type(room_filter.ephemeral):
            for source in (self._typing.ephemeral(joined, since_ephemeral),
                           await self._receipts.ephemeral(request.user_id, joined, since, now)):
                for room_id, event in source.items():
                    if event_matches(room_filter.ephemeral, event):
                        ephemeral.setdefault(room_id, []).append(event)
        changed_rooms |= set(ephemeral)
        for room_id, membership, event_id, at in memberships:
            if not room_allowed(room_filter, room_id) or at > now:
                continue
            membership_changed = since is None or at > since
            if membership == "join":
                full = since is None or request.full_state or membership_changed
                if full or room_id in changed_rooms:
                    join[room_id] = await self._room(request, room_id, since, now, full=full)
                    join[room_id]["account_data"]["events"] = room_data.get(room_id, [])
                    join[room_id]["ephemeral"]["events"] = ephemeral.get(room_id, [])
                    threaded = room_filter.timeline.unread_thread_notifications
                    (notified, highlighted), threads = await self._unread.counts(
                        request.user_id, room_id, now, threaded, joined_at=at)
                    join[room_id]["unread_notifications"] = {
                        "highlight_count": highlighted, "notification_count": notified}
                    if threaded:
                        join[room_id]["unread_thread_notifications"] = {
                            root: {"highlight_count": h, "notification_count": n}
                            for root, (n, h) in threads.items()}
            elif membership == "invite" and membership_changed:
                invite[room_id] = {"invite_state": {"events": await self._stripped(
                    room_id, event_id)}}
            elif membership == "knock" and membership_changed:
                knock[room_id] = {"knock_state": {"events": await self._stripped(
                    room_id, event_id)}}
            elif membership in ("leave", "ban") and (
                    (since is not None and membership_changed)
                    or (since is None and room_filter.include_leave)):
                leave[room_id] = await self._room(request, room_id, since, at, full=False,
                                                  left=True)
        presence = [] if excludes_every_type(request.filter.presence) else [
            e for e in await self._presence.events_for(request.user_id, since_ephemeral)
            if event_matches(request.filter.presence, e)]
        changed, left = await self._e2e.device_list_changes(request.user_id, since, now)
        otk_counts, fallback_types = await self._e2e.key_counts(request.user_id,
                                                                request.device_id)
        has_updates = bool(join or invite or knock or leave or global_data or presence
                           or to_device or changed or left)
        response = {
            "next_batch": f"s{now}_{ephemeral_now}",
            "rooms": {"join": join, "invite": invite, "knock": knock, "leave": leave},
            "account_data": {"events": global_data},
            "presence": {"events": presence},
            "to_device": {"events": to_device},
            "device_lists": {"changed": changed, "left": left},
            "device_one_time_keys_count": otk_counts,
            "device_unused_fallback_key_types": fallback_types,
        }
        return response, has_updates

    async def _room(self, request: SyncRequest, room_id: str, since: int | None, upto: int,
                    *, full: bool, left: bool = False) -> dict[str, Any]:
        timeline_filter = request.filter.room.timeline
        limit = effective_limit(timeline_filter, DEFAULT_TIMELINE_LIMIT)
        after = 0 if full or since is None else since
        events = await self._events.get_room_events_by_stream(room_id, after, upto, limit + 1)
        limited = len(events) > limit
        events = events[-limit:] if limited else events
        start_stream = events[0].stream_ordering if events else upto + 1
        state_at_start = await self._state_before(room_id, start_stream)
        if full or request.full_state:
            state_ids = state_at_start
        elif limited and since is not None:
            at_since = await self._state_before(room_id, since + 1)
            state_ids = {k: v for k, v in state_at_start.items() if at_since.get(k) != v}
        else:
            state_ids = {}
        visible = await self._visibility.filter(request.user_id, events)
        now_ms = int(time.time() * 1000)
        served = await serve_events(visible, (request.user_id, request.device_id),
                                    self._timeline.get_pdus, bundler=self._bundler_for(
                                        request.user_id, request.device_id)
                                    if limited or full else None)
        timeline_events = [self._format(request, stored.pdu, event)
                           for stored, event in zip(visible, served, strict=True)
                           if event_matches(timeline_filter, event)]
        if request.filter.room.state.lazy_load_members:
            # "Lazy-loading room members": only the members who sent something shown (and
            # the syncing user); the rest come with the events that need them.
            wanted = {s.pdu.sender for s in visible} | {request.user_id}
            if full or request.full_state:
                state_ids = {k: v for k, v in state_ids.items()
                             if k[0] != "m.room.member" or k[1] in wanted}
            for user in wanted:
                key = ("m.room.member", user)
                if key in state_at_start and not any(
                        s.pdu.state_tuple == key for s in visible if s.pdu.is_state):
                    state_ids[key] = state_at_start[key]
        state_pdus = await self._timeline.get_pdus(list(state_ids.values()))
        state_events = []
        for pdu in state_pdus.values():
            event = client_event(pdu, now_ms=now_ms)
            if event_matches(request.filter.room.state, event):
                state_events.append(self._format(request, pdu, event))
        first = events[0] if events else None
        prev_batch = topological_token(first.pdu.depth, first.stream_ordering - 1) if first \
            else topological_token(*await self._events.get_topological_position(room_id, upto))
        section: dict[str, Any] = {
            "timeline": {"events": timeline_events, "limited": limited,
                         "prev_batch": prev_batch},
            "state": {"events": state_events},
            "account_data": {"events": []},
        }
        if not left:
            section["ephemeral"] = {"events": []}
            section["unread_notifications"] = {"highlight_count": 0, "notification_count": 0}
            section["summary"] = {}
        return section

    async def _state_before(self, room_id: str, stream: int) -> dict[StateKey, str]:
        group = await self._events.get_state_group_before(room_id, stream)
        return {} if group is None else await self._state.get_state(group)

    async def _stripped(self, room_id: str, membership_event_id: str) -> list[dict[str, Any]]:
        state = await self._state.get_current_state(room_id)
        if not state:  # a room on another server: what its invite carried
            event = (await self._timeline.get_pdus([membership_event_id])).get(
                membership_event_id)
            if event is not None and isinstance(event.unsigned.get("invite_room_state"), list):
                own = {"type": event.type, "state_key": event.state_key,
                       "content": event.data.get("content", {}), "sender": event.sender}
                return [*event.unsigned["invite_room_state"], own]
        wanted = [state[(t, "")] for t in STRIPPED_STATE_TYPES if (t, "") in state]
        pdus = await self._timeline.get_pdus([*wanted, membership_event_id])
        return [{"type": p.type, "state_key": p.state_key, "content": p.data.get("content", {}),
                 "sender": p.sender} for p in pdus.values()]

    def _format(self, request: SyncRequest, pdu: PDU, event: dict[str, Any]) -> dict[str, Any]:
        if request.filter.event_format == "federation":
            return dict(pdu.data)
        del event["room_id"]  # implied by the room the event is listed under
        fields = request.filter.event_fields
        return project_fields(event, fields) if fields is not None else event


def project_fields(event: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Filter's ``event_fields``: keep only these dot-separated paths ("content.body")."""
    out: dict[str, Any] = {}
    for path in fields:
        parts = _split_path(path)
        source: Any = event
        for part in parts:
            if not isinstance(source, dict) or part not in source:
                break
            source = source[part]
        else:
            target = out
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = source
    return out


def _split_path(path: str) -> list[str]:
    """Appendices, "Dot-separated property paths": '\\.' is a literal dot."""
    parts, current, escaped = [], [], False
    for char in path:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts

