"""Client-server API, "Spaces": ``GET /rooms/{roomId}/hierarchy`` walks a space's
``m.space.child`` tree and summarises the rooms the requesting user may see.

The walk is depth-first, as the spec describes it ("when it encounters another space as a child
it recurses into that space before returning non-space children"): a room is followed by its
own subtree before its next sibling, and siblings come in the spec's child order. Each room
appears at most once, which also breaks loops. Where the spec leaves a choice, Synapse's
behaviour applies:

* the root is always listed; its children, and theirs, only while ``max_depth`` allows;
* only spaces (``m.room.create`` type ``m.space``) are descended into and have
  ``children_state``; a non-space room's ``m.space.child`` events are ignored;
* ``suggested_only`` drops the children not marked ``suggested: true``, both from
  ``children_state`` and from the walk (the root is listed regardless);
* children this server does not know are left out (fetching them would need federation, which
  this server does not speak yet), as are rooms the user may not see; neither is descended into;
* pagination tokens name a session kept in memory for a few minutes (the rest of the walk), bound
  to the user, the root and ``suggested_only``/``max_depth``: a token used with other values, by
  another user, after it expired or after a restart is refused with 400 M_INVALID_PARAM. Using
  the same token twice yields the same continuation.

Which rooms a user may see is the rule of the spec's response description: rooms the user is
joined or invited to, rooms they may join (join rule ``public``; ``restricted`` when they are
joined to one of the allowed rooms), knockable rooms (``knock``/``knock_restricted`` in room
versions that have them), and ``world_readable`` rooms. A banned user does not have permission
to join, so a ban overrides ``public`` and ``restricted`` (the spec lists a ban among the reasons
for 403); the room-wide conditions (knockable, world_readable) still apply.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from myelin.core.events import PDU, StateKey
from myelin.errors import forbidden, invalid_param, not_found
from myelin.services.auth import Requester
from myelin.services.directory import DirectoryService
from myelin.services.rooms.timeline import RoomState, Timeline
from myelin.storage.stores.directory import DirectoryStore
from myelin.storage.stores.state import StateStore

SPACE_CHILD = "m.space.child"
SPACE_ROOM_TYPE = "m.space"
JOIN_RULES: StateKey = ("m.room.join_rules", "")
HISTORY_VISIBILITY: StateKey = ("m.room.history_visibility", "")
ENCRYPTION: StateKey = ("m.room.encryption", "")

# Rooms per page: the default and the most a client may ask for (Synapse's MAX_ROOMS).
MAX_LIMIT = 50
# How deep a walk may go: the default and the most a client may ask for. Loops and rooms seen
# twice are cut anyway; this only bounds absurdly deep trees, as the spec asks servers to.
MAX_DEPTH = 50
# Rooms looked at per request, listed or not: a space with thousands of unknown or hidden
# children must not turn one request into thousands of reads. The walk then pauses early
# and hands out a token for the rest.
MAX_EXAMINED = 500
# How long a pagination token stays valid, and how many may be outstanding at once.
SESSION_LIFETIME_S = 5 * 60.0
MAX_SESSIONS = 2_000

# m.space.child "order": 1-50 characters between U+0020 and U+007E.
_VALID_ORDER = re.compile(r"[\x20-\x7E]{1,50}")


@dataclass(frozen=True)
class HierarchyQuery:
    """One ``/hierarchy`` request, with its query parameters as the client sent them."""

    room_id: str
    suggested_only: bool = False
    max_depth: int | None = None
    limit: int | None = None
    from_token: str | None = None


@dataclass(frozen=True)
class _Session:
    """Where a paginated walk stands: what must not change between pages, the rooms still to
    visit (the next one last) with their depth, and the rooms already visited."""

    user_id: str
    room_id: str
    suggested_only: bool
    max_depth: int | None
    created: float
    stack: tuple[tuple[str, int], ...]
    processed: frozenset[str]


def child_order_key(event: PDU) -> tuple[bool, str, int, str]:
    """Spec, "Ordering of children within a space": children with a valid ``order`` first, by
    code point; then by ``origin_server_ts``; then by room ID (the state key)."""
    order = event.content.get("order")
    if not isinstance(order, str) or _VALID_ORDER.fullmatch(order) is None:
        order = None
    ts = event.origin_server_ts
    return (order is None, order or "", ts if isinstance(ts, int) else 0,
            event.state_key or "")


def is_valid_child(event: PDU) -> bool:
    """An ``m.space.child`` event that links a room: its ``via`` is a non-empty list of
    strings (a child without one, e.g. redacted or cleared, is no longer part of the space)."""
    via = event.content.get("via")
    return (isinstance(via, list) and bool(via) and all(isinstance(v, str) for v in via)
            and (event.state_key or "").startswith("!"))


class SpaceService:
    def __init__(self, timeline: Timeline, state: StateStore, directory: DirectoryService,
                 directory_store: DirectoryStore,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._timeline = timeline
        self._state = state
        self._directory = directory
        self._directory_store = directory_store
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self.session_lifetime_s = SESSION_LIFETIME_S
        # Set by the federation layer: a room's hierarchy as one of the given servers sees it.
        self.remote: Callable[[str, list[str], bool], Awaitable[dict[str, Any] | None]] \
            | None = None

    async def hierarchy(self, requester: Requester, query: HierarchyQuery) -> dict[str, Any]:
        if query.limit is not None and query.limit <= 0:
            raise invalid_param("limit must be a positive integer")
        if query.max_depth is not None and query.max_depth < 0:
            raise invalid_param("max_depth must be a non-negative integer")
        user_id = requester.user_id
        root = await self._timeline.room(query.room_id)
        if root is None or not await self._may_see(root, user_id):
            raise forbidden("You are not allowed to view this room")
        if query.from_token is not None:
            session = self._resume(query, user_id)
            stack = list(session.stack)
            processed = set(session.processed)
        else:
            stack = [(query.room_id, 0)]
            processed = set()
        limit = min(query.limit or MAX_LIMIT, MAX_LIMIT)
        max_depth = min(MAX_DEPTH if query.max_depth is None else query.max_depth, MAX_DEPTH)

        rooms: list[dict[str, Any]] = []
        examined = 0
        via: dict[str, list[str]] = {}
        remote_entries: dict[str, dict[str, Any]] = {}
        while stack and len(rooms) < limit and examined < MAX_EXAMINED:
            room_id, depth = stack.pop()
            if room_id in processed:
                continue
            processed.add(room_id)
            examined += 1
            room = root if room_id == root.room_id else await self._timeline.room(room_id)
            if room is not None and room.extremities:
                if not await self._may_see(room, user_id):
                    continue  # hidden from this user
                entry, _ = await self._summarise(room, query.suggested_only)
                child_states = entry["children_state"]
            else:
                # A room this server is not in: ask the servers its parent names.
                found = remote_entries.get(room_id) or await self._ask_remote(
                    room_id, via.get(room_id, []), query.suggested_only, remote_entries)
                if found is None:
                    continue
                entry, child_states = found, list(found.get("children_state", []))
            rooms.append(entry)
            for child in child_states:
                servers = child.get("content", {}).get("via")
                if isinstance(servers, list):
                    via.setdefault(child.get("state_key", ""),
                                   [s for s in servers if isinstance(s, str)])
            if depth < max_depth:
                stack.extend((child.get("state_key") or "", depth + 1)
                             for child in reversed(child_states))

        response: dict[str, Any] = {"rooms": rooms}
        stack = [item for item in stack if item[0] not in processed]  # seen by another path
        if stack:
            response["next_batch"] = self._save(_Session(
                user_id, query.room_id, query.suggested_only, query.max_depth, self._clock(),
                tuple(stack), frozenset(processed)))
        return response

    async def _ask_remote(self, room_id: str, servers: list[str], suggested_only: bool,
                          cache: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        if self.remote is None or not servers:
            return None
        answer = await self.remote(room_id, servers, suggested_only)
        if answer is None or not isinstance(answer.get("room"), dict):
            return None
        for child in answer.get("children", []):
            if isinstance(child, dict) and isinstance(child.get("room_id"), str):
                cache.setdefault(child["room_id"], child)
        room: dict[str, Any] = answer["room"]
        return room

    async def federation_hierarchy(self, origin: str, room_id: str,
                                   suggested_only: bool) -> dict[str, Any]:
        """Server-server API, "Spaces": the room and its direct children, for a server
        walking a space; only rooms anyone may peek or join are described."""
        room = await self._timeline.room(room_id)
        if room is None or not await self._publicly_visible(room):
            raise not_found("Unknown room or not accessible")
        entry, children = await self._summarise(room, suggested_only)
        described, inaccessible = [], []
        for child in children:
            child_room = await self._timeline.room(child.state_key or "")
            if child_room is None or not child_room.extremities:
                continue  # unknown here: the asking server may ask another
            if await self._publicly_visible(child_room):
                described.append((await self._summarise(child_room, suggested_only))[0])
            else:
                inaccessible.append(child_room.room_id)
        return {"room": entry, "children": described, "inaccessible_children": inaccessible}

    async def _publicly_visible(self, room: RoomState) -> bool:
        state = await self._timeline.state_events(room, [JOIN_RULES, HISTORY_VISIBILITY])
        rule = state[JOIN_RULES].content.get("join_rule") if JOIN_RULES in state else None
        history = state[HISTORY_VISIBILITY].content.get("history_visibility") \
            if HISTORY_VISIBILITY in state else None
        version = room.room_version
        return rule == "public" or history == "world_readable" \
            or (rule == "knock" and version.knocking) \
            or (rule == "knock_restricted" and version.knock_restricted_join_rule)

    # -- pagination sessions --

    def _resume(self, query: HierarchyQuery, user_id: str) -> _Session:
        self._expire()
        session = self._sessions.get(query.from_token or "")
        if session is None or session.user_id != user_id or session.room_id != query.room_id:
            raise invalid_param("Unknown pagination token")
        if session.suggested_only != query.suggested_only \
                or session.max_depth != query.max_depth:
            raise invalid_param("suggested_only and max_depth cannot change on paginated "
                                "requests")
        return session

    def _save(self, session: _Session) -> str:
        self._expire()
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        token = secrets.token_urlsafe(18)
        self._sessions[token] = session
        return token

    def _expire(self) -> None:
        """Drop expired sessions; they are kept in creation order, so from the front."""
        horizon = self._clock() - self.session_lifetime_s
        while self._sessions:
            token, oldest = next(iter(self._sessions.items()))
            if oldest.created > horizon:
                break
            del self._sessions[token]

    # -- rooms --

    async def _summarise(self, room: RoomState,
                         suggested_only: bool) -> tuple[dict[str, Any], list[PDU]]:
        """The room's ``SpaceHierarchyRoomsChunk`` and, for a space, its children in order."""
        room_id = room.room_id
        joined = len(await self._directory_store.joined_members(room_id))
        entry = await self._directory.room_entry(room_id, joined)
        entry["room_version"] = room.room_version.identifier
        state = await self._timeline.state_events(room, [JOIN_RULES, ENCRYPTION])
        algorithm = state[ENCRYPTION].content.get("algorithm") if ENCRYPTION in state else None
        if isinstance(algorithm, str) and algorithm:
            entry["encryption"] = algorithm
        allowed = _allowed_room_ids(room, state.get(JOIN_RULES))
        if allowed:
            entry["allowed_room_ids"] = allowed
        children: list[PDU] = []
        if entry.get("room_type") == SPACE_ROOM_TYPE:
            children = await self._children(room)
            if suggested_only:
                children = [c for c in children if c.content.get("suggested") is True]
        entry["children_state"] = [
            {"type": c.type, "state_key": c.state_key, "content": dict(c.content),
             "sender": c.sender, "origin_server_ts": c.origin_server_ts}
            for c in children
        ]
        return entry, children

    async def _children(self, room: RoomState) -> list[PDU]:
        keys = [key for key in room.state if key[0] == SPACE_CHILD]
        events = await self._timeline.state_events(room, keys)
        return sorted((e for e in events.values() if is_valid_child(e)), key=child_order_key)

    async def _may_see(self, room: RoomState, user_id: str) -> bool:
        member_key: StateKey = ("m.room.member", user_id)
        state = await self._timeline.state_events(
            room, [JOIN_RULES, HISTORY_VISIBILITY, member_key])
        member = state.get(member_key)
        membership = member.membership if member is not None else None
        if membership in ("join", "invite"):
            return True
        join_rules = state.get(JOIN_RULES)
        rule = join_rules.content.get("join_rule") if join_rules is not None else None
        version = room.room_version
        if (rule == "knock" and version.knocking) \
                or (rule == "knock_restricted" and version.knock_restricted_join_rule):
            return True
        history = state.get(HISTORY_VISIBILITY)
        if history is not None and history.content.get("history_visibility") == "world_readable":
            return True
        if membership == "ban":
            return False
        if rule == "public":
            return True
        for other in _allowed_room_ids(room, join_rules):
            joined = await self._state.get_membership(other, user_id)
            if joined is not None and joined[0] == "join":
                return True
        return False


def _allowed_room_ids(room: RoomState, join_rules: PDU | None) -> list[str]:
    """The rooms whose members may join a restricted (or knock_restricted) room."""
    if join_rules is None:
        return []
    rule = join_rules.content.get("join_rule")
    version = room.room_version
    if not (rule == "restricted" and version.restricted_join_rule) \
            and not (rule == "knock_restricted" and version.knock_restricted_join_rule):
        return []
    allow = join_rules.content.get("allow")
    found: list[str] = []
    for condition in allow if isinstance(allow, list) else []:
        if isinstance(condition, dict) and condition.get("type") == "m.room_membership":
            room_id = condition.get("room_id")
            if isinstance(room_id, str) and room_id not in found:
                found.append(room_id)
    return found
