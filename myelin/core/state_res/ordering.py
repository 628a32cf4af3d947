"""The orderings of state resolution v2: reverse topological power ordering and mainline ordering.

Spec: rooms/fragments/v2-state-res.md (and rooms/v12.md, unchanged there), "Definitions" >
"Reverse topological power ordering" and "Mainline ordering".
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from myelin.core.auth.levels import user_power_level
from myelin.core.events import PDU, StateKey
from myelin.core.state_res.auth_chain import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    EventGraph,
    StateResolutionError,
    nearest_ancestors_within,
)

# Kahn's tie-break keys: (negated sender power level, origin_server_ts, event_id).
PowerKey = tuple[float, int, str]


def lexicographic_topological_sort(
    nodes: Collection[str],
    parents: Mapping[str, Iterable[str]],
    key: Callable[[str], Any],
) -> list[str]:
    """Kahn's algorithm: the topological order (parents first) that is lexicographically
    smallest under ``key``, by picking, at each step, the smallest node whose parents are all
    placed. ``key`` must be a total order on ``nodes`` (end it with the node itself).

    Parents outside ``nodes`` are ignored.
    """
    waiting_on: dict[str, int] = {}
    children: dict[str, list[str]] = {}
    for node in nodes:
        count = 0
        for parent in set(parents.get(node, ())):
            if parent in nodes and parent != node:
                children.setdefault(parent, []).append(node)
                count += 1
        waiting_on[node] = count
    ready = [(key(node), node) for node, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        ordered.append(node)
        for child in children.get(node, ()):
            waiting_on[child] -= 1
            if waiting_on[child] == 0:
                heapq.heappush(ready, (key(child), child))
    if len(ordered) != len(waiting_on):
        raise StateResolutionError("auth events form a cycle")
    return ordered


# -- the sender's power level, "when looking at their respective auth_events" --


def sender_power_level(graph: EventGraph, event: PDU, room_create: PDU | None) -> float:
    """The sender's power level per the ``m.room.power_levels`` event in the event's
    ``auth_events``, read exactly as the auth rules read it (core.auth.levels: string and float
    values by room version, creators at 100 without power levels, infinite from v12)."""
    room_version = event.room_version
    state: dict[StateKey, PDU] = {}
    if room_create is not None:
        state[CREATE_KEY] = room_create
    for auth_id in graph.auth_ids(event.event_id):
        auth_event = graph.get(auth_id)
        key = auth_event.state_tuple
        if key == POWER_LEVELS_KEY or (key == CREATE_KEY and not room_version.privileged_creators):
            state[key] = auth_event
    return float(user_power_level(event.sender, state, room_version))


def reverse_topological_power_ordering(
    graph: EventGraph, event_ids: Collection[str], room_create: PDU | None
) -> list[str]:
    """The events sorted earliest first: Kahn's algorithm over the auth DAG restricted to
    ``event_ids``, choosing among the ready events the one whose sender has the greatest power
    level, then the smallest ``origin_server_ts``, then the smallest ``event_id``.
    """
    keys: dict[str, PowerKey] = {}
    for event_id in event_ids:
        event = graph.get(event_id)
        power = sender_power_level(graph, event, room_create)
        keys[event_id] = (-power, event.origin_server_ts, event_id)
    parents = nearest_ancestors_within(graph, set(event_ids))
    return lexicographic_topological_sort(keys.keys(), parents, keys.__getitem__)


def mainline(graph: EventGraph, power_levels_id: str) -> list[str]:
    """[P0, P1, ..., Pn]: P0 and, repeatedly, the power levels event among the previous one's
    ``auth_events``."""
    chain = [power_levels_id]
    seen = {power_levels_id}
    next_id = graph.power_levels_auth(power_levels_id)
    while next_id is not None:
        if next_id in seen:
            raise StateResolutionError(f"power levels events cite each other: {next_id}")
        seen.add(next_id)
        chain.append(next_id)
        next_id = graph.power_levels_auth(next_id)
    return chain


def mainline_ordering(
    graph: EventGraph, event_ids: Iterable[str], power_levels_id: str | None
) -> list[str]:
    """The events sorted by the mainline ordering based on ``power_levels_id`` (none: every
    position is infinite): greater mainline position first, then smaller ``origin_server_ts``, then
    smaller ``event_id``.

    The mainline position of e is the index i in the mainline of the first e_j (j >= 1, e_0 = e,
    e_j+1 the power levels auth event of e_j) that is on the mainline; infinite if none is.
    """
    line = mainline(graph, power_levels_id) if power_levels_id is not None else []
    infinity = len(line)  # greater than every index of the mainline
    position: dict[str, int] = {event_id: i for i, event_id in enumerate(line)}

    def position_of_power_levels(start: str | None) -> int:
        """Position of the first of ``start``, its power levels auth event, ... on the mainline."""
        walked: list[str] = []
        walked_set: set[str] = set()
        current = start
        found = infinity
        while current is not None:
            known = position.get(current)
            if known is not None:
                found = known
                break
            if current in walked_set:
                raise StateResolutionError(f"power levels events cite each other: {current}")
            walked.append(current)
            walked_set.add(current)
            current = graph.power_levels_auth(current)
        for event_id in walked:
            position[event_id] = found
        return found

    keys: list[tuple[int, int, str]] = []
    for event_id in event_ids:
        event = graph.get(event_id)
        pos = position_of_power_levels(graph.power_levels_auth(event_id))
        keys.append((-pos, event.origin_server_ts, event_id))
    keys.sort()
    return [event_id for _, _, event_id in keys]
