"""State resolution v2 (room versions 2-11) and its v2.1 variant (room version 12).

Spec: rooms/fragments/v2-state-res.md, "Algorithm", and rooms/v12.md, "State resolution". The
two differ in exactly two places, carried by ``Variant``:

1. v2.1 adds the *conflicted state subgraph* to the *full conflicted set*
   (``Variant.include_conflicted_state_subgraph``);
2. v2.1 starts the first iterative auth checks (step 2) from an *empty* state map rather than
   from the unconflicted state map (``Variant.start_from_empty_state``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from myelin.core.auth import AuthError, auth_types_for_event, check_auth
from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import RoomVersion
from myelin.core.state_res.auth_chain import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    EventGraph,
    auth_ancestors,
    auth_difference,
    conflicted_state_subgraph,
    room_create_event,
)
from myelin.core.state_res.ordering import mainline_ordering, reverse_topological_power_ordering


@dataclass(frozen=True)
class Variant:
    name: str
    include_conflicted_state_subgraph: bool
    start_from_empty_state: bool


V2 = Variant("v2", include_conflicted_state_subgraph=False, start_from_empty_state=False)
V2_1 = Variant("v2.1", include_conflicted_state_subgraph=True, start_from_empty_state=True)


def is_power_event(event: PDU) -> bool:
    """"Power events": ``m.room.power_levels``, ``m.room.join_rules``, and ``m.room.member``
    leaves and bans whose sender is not the target (kicks and bans)."""
    if not event.is_state:
        return False
    if event.type in ("m.room.power_levels", "m.room.join_rules"):
        return True
    return (
        event.type == "m.room.member"
        and event.membership in ("leave", "ban")
        and event.sender != event.state_key
    )


def partition(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], set[str]]:
    """The unconflicted state map (keys present in every set with the same event) and the
    conflicted state set (every other event)."""
    first, *others = state_sets
    common = set(first.items())
    for other in others:
        common.intersection_update(other.items())
    unconflicted = dict(common)
    conflicted = {
        event_id
        for state_set in state_sets
        for key, event_id in state_set.items()
        if key not in unconflicted
    }
    return unconflicted, conflicted


def power_events_with_auth_chains(graph: EventGraph, full_conflicted: set[str]) -> set[str]:
    """Step 1's X: the power events of the full conflicted set, enlarged by the events of
    their auth chains that belong to the full conflicted set.

    The auth chains are walked whole, also through events outside the full conflicted set, as
    the definition of "auth chain" says. (An implementation that only follows auth events
    inside the full conflicted set can leave out a conflicted event that a power event reaches
    through an unconflicted one, e.g. the old membership of a moderator whose unconflicted
    power levels event a conflicted kick cites: that event then goes to step 3 instead.)
    """
    power_events = {e for e in full_conflicted if is_power_event(graph.get(e))}
    return power_events | (auth_ancestors(graph, power_events) & full_conflicted)


def auth_state_for(
    graph: EventGraph, event: PDU, state: Mapping[StateKey, str], room_create: PDU | None
) -> dict[StateKey, PDU]:
    """The state to authorise ``event`` against in the iterative auth checks.

    For each key the auth rules need (auth events selection), the event of ``state``; if the
    key is not in ``state``, the event's own auth event for that key. Always includes the
    create event: from v12 events do not cite it, so it is the room's.
    """
    auth_state: dict[StateKey, PDU] = {}
    cited: dict[StateKey, PDU] | None = None
    for key in auth_types_for_event(event):
        state_id = state.get(key)
        if state_id is not None:
            auth_state[key] = graph.get(state_id)
            continue
        if cited is None:
            cited = {}
            for auth_id in graph.auth_ids(event.event_id):
                auth_event = graph.get(auth_id)
                cited.setdefault(auth_event.state_tuple, auth_event)
        if key in cited:
            auth_state[key] = cited[key]
    if CREATE_KEY not in auth_state and room_create is not None:
        auth_state[CREATE_KEY] = room_create
    return auth_state


def iterative_auth_checks(
    graph: EventGraph,
    ordered: Iterable[str],
    state: dict[StateKey, str],
    room_create: PDU | None,
) -> dict[StateKey, str]:
    """"Iterative auth checks": apply each event in turn to ``state`` (updated in place and
    returned) if the authorization rules allow it; events they reject are skipped."""
    for event_id in ordered:
        event = graph.get(event_id)
        try:
            check_auth(event, auth_state_for(graph, event, state, room_create))
        except AuthError:
            continue
        state[event.state_tuple] = event_id
    return state


def resolve(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    events: Mapping[str, PDU],
    variant: Variant,
) -> dict[StateKey, str]:
    """The resolution of ``state_sets`` ("Algorithm", steps 1-5)."""
    if not state_sets:
        return {}
    graph = EventGraph(events)
    unconflicted, conflicted = partition(state_sets)
    if not conflicted:
        # Every set is the same map, so their auth chains agree: nothing to resolve.
        return unconflicted
    room_create = room_create_event(room_version, state_sets, graph)

    full_conflicted = conflicted | auth_difference(graph, [s.values() for s in state_sets])
    if variant.include_conflicted_state_subgraph:
        full_conflicted |= conflicted_state_subgraph(graph, conflicted)

    # 1. Power events of the full conflicted set, with the full conflicted set's events in
    #    their auth chains, in reverse topological power ordering.
    picked = power_events_with_auth_chains(graph, full_conflicted)
    power_ordered = reverse_topological_power_ordering(graph, picked, room_create)

    # 2. Iterative auth checks from the unconflicted state map (v2) or an empty one (v2.1).
    start: dict[StateKey, str] = {} if variant.start_from_empty_state else dict(unconflicted)
    partial = iterative_auth_checks(graph, power_ordered, start, room_create)

    # 3. The other events, in mainline ordering based on the partial state's power levels.
    others = mainline_ordering(graph, full_conflicted - picked, partial.get(POWER_LEVELS_KEY))

    # 4. Iterative auth checks on top of the partial state.
    resolved = iterative_auth_checks(graph, others, partial, room_create)

    # 5. The unconflicted state map wins.
    resolved.update(unconflicted)
    return resolved
