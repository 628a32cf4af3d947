"""State resolution v1 (room version 1).

Spec: rooms/v1.md, "State resolution". R, the result so far, starts as the union of the states
without their conflicting events (a *conflict* is two states holding different event IDs for
one key; a key that only some states hold is not one). Then, in this order:

1. each ``m.room.power_levels`` conflict, 2. each ``m.room.join_rules`` conflict, 3. each
   ``m.room.member`` conflict: sort the key's events by ascending ``depth`` then descending
   ``sha1(event_id)``; put the first in R; put each next one in R while the authorization rules
   allow it in state R, and stop at the first they do not;
4. every other conflict: the first event, by descending ``depth`` then ascending
   ``sha1(event_id)``, that the authorization rules allow in state R.

Choices where the text is silent, made deterministic: conflicts of one type are resolved in
order of state key; in step 4 a key none of whose events is allowed is left out of R.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from myelin.core.auth import AuthError, auth_types_for_event, check_auth
from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import RoomVersion
from myelin.core.state_res.auth_chain import CREATE_KEY, EventGraph, room_create_event

AUTH_CONFLICT_TYPES = ("m.room.power_levels", "m.room.join_rules", "m.room.member")


def _sha1(event_id: str) -> bytes:
    return hashlib.sha1(event_id.encode("utf-8")).digest()


def _inverted(digest: bytes) -> bytes:
    """Sorts in the opposite order to ``digest`` (for "descending sha1")."""
    return bytes(255 - b for b in digest)


def _allowed(graph: EventGraph, event: PDU, state: Mapping[StateKey, str],
             room_create: PDU | None) -> bool:
    """Whether the authorization rules allow ``event`` in a room whose state is ``state``."""
    auth_state = {
        key: graph.get(state[key]) for key in auth_types_for_event(event) if key in state
    }
    if CREATE_KEY not in auth_state:
        if CREATE_KEY in state:
            auth_state[CREATE_KEY] = graph.get(state[CREATE_KEY])
        elif room_create is not None:
            auth_state[CREATE_KEY] = room_create
    try:
        check_auth(event, auth_state)
    except AuthError:
        return False
    return True


def resolve(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    events: Mapping[str, PDU],
) -> dict[StateKey, str]:
    graph = EventGraph(events)
    candidates: dict[StateKey, set[str]] = {}
    for state_set in state_sets:
        for key, event_id in state_set.items():
            candidates.setdefault(key, set()).add(event_id)
    resolved = {key: next(iter(ids)) for key, ids in candidates.items() if len(ids) == 1}
    conflicts = {key: ids for key, ids in candidates.items() if len(ids) > 1}
    if not conflicts:
        return resolved
    room_create = room_create_event(room_version, state_sets, graph)

    for event_type in AUTH_CONFLICT_TYPES:
        for key in sorted(k for k in conflicts if k[0] == event_type):
            ordered = sorted(
                (graph.get(event_id) for event_id in conflicts[key]),
                key=lambda e: (e.depth, _inverted(_sha1(e.event_id))),
            )
            first, *rest = ordered
            resolved[key] = first.event_id
            for event in rest:
                if not _allowed(graph, event, resolved, room_create):
                    break
                resolved[key] = event.event_id

    for key in sorted(k for k in conflicts if k[0] not in AUTH_CONFLICT_TYPES):
        ordered = sorted(
            (graph.get(event_id) for event_id in conflicts[key]),
            key=lambda e: (-e.depth, _sha1(e.event_id)),
        )
        for event in ordered:
            if _allowed(graph, event, resolved, room_create):
                resolved[key] = event.event_id
                break
    return resolved
