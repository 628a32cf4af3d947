"""The auth graph of a room, read from an event map: auth chains, the auth difference, the
conflicted state subgraph, and the room's create event.

Spec: rooms/fragments/v2-state-res.md, "Definitions" > "Auth chain" and "Auth difference";
rooms/v12.md, "State resolution" > "Definitions" > "Conflicted state subgraph".

Everything here walks the DAG induced by ``auth_events`` links over the ``events`` mapping the
caller handed to ``resolve_state``; an event that is needed but absent raises
``MissingEventError`` naming it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import RoomVersion

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")


class StateResolutionError(Exception):
    """The input cannot be resolved (missing or malformed events)."""


class MissingEventError(StateResolutionError, KeyError):
    """An event referenced by a state set or an auth chain is not in ``events``."""

    def __init__(self, event_id: str) -> None:
        super().__init__(event_id)
        self.event_id = event_id

    def __str__(self) -> str:
        return f"event {self.event_id} is needed for state resolution but was not provided"


class EventGraph:
    """``events`` viewed as the auth DAG; caches what the algorithms read repeatedly."""

    __slots__ = ("_auth_ids", "_events", "_power_levels_auth")

    def __init__(self, events: Mapping[str, PDU]) -> None:
        self._events = events
        self._auth_ids: dict[str, tuple[str, ...]] = {}
        self._power_levels_auth: dict[str, str | None] = {}

    def get(self, event_id: str) -> PDU:
        try:
            return self._events[event_id]
        except KeyError:
            raise MissingEventError(event_id) from None

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._events

    def auth_ids(self, event_id: str) -> tuple[str, ...]:
        """The event's ``auth_events`` IDs (parsed once)."""
        ids = self._auth_ids.get(event_id)
        if ids is None:
            event = self.get(event_id)
            refs = event.data.get("auth_events")
            # v3+: a list of event IDs, taken as is; otherwise the PDU's parser (v1-v2 pairs).
            if isinstance(refs, list) and all(type(r) is str for r in refs):
                ids = tuple(refs)
            else:
                ids = tuple(event.auth_event_ids)
            self._auth_ids[event_id] = ids
        return ids

    def power_levels_auth(self, event_id: str) -> str | None:
        """The ``m.room.power_levels`` event among the event's ``auth_events``, if any."""
        try:
            return self._power_levels_auth[event_id]
        except KeyError:
            pass
        found = None
        for auth_id in self.auth_ids(event_id):
            if self.get(auth_id).state_tuple == POWER_LEVELS_KEY:
                found = auth_id
                break
        self._power_levels_auth[event_id] = found
        return found


def auth_ancestors(
    graph: EventGraph, seeds: Iterable[str], stop: Collection[str] = ()
) -> set[str]:
    """The union of the auth chains of ``seeds``.

    The auth chain of E is every event reachable from E by ``auth_events`` links (E itself only
    if it is reachable from another seed). Events in ``stop`` are neither returned nor walked
    through.
    """
    found: set[str] = set()
    pending: list[str] = []
    for seed in seeds:
        pending.extend(graph.auth_ids(seed))
    while pending:
        event_id = pending.pop()
        if event_id in found or event_id in stop:
            continue
        found.add(event_id)
        pending.extend(graph.auth_ids(event_id))
    return found


def auth_difference(graph: EventGraph, state_sets: Sequence[Collection[str]]) -> set[str]:
    """union(C_i) - intersection(C_i), C_i being the full auth chain of state set i (the
    union of the auth chains of its events).

    Computed without building each C_i: let A be the union of the auth chains of the events
    present in every state set. Every C_i is A | B_i, with B_i the auth chains of the rest of
    set i, so the difference is union(B_i - A) - intersection(B_i - A); and B_i - A is what a
    walk from the rest of set i reaches without entering A (all that A reaches is in A).
    """
    if len(state_sets) < 2:
        return set()
    sets = [set(s) for s in state_sets]
    common = set.intersection(*sets)
    shared_chain = auth_ancestors(graph, common)
    chains = [auth_ancestors(graph, s - common, stop=shared_chain) for s in sets]
    first, *rest = chains
    return first.union(*rest) - first.intersection(*rest)


def conflicted_state_subgraph(graph: EventGraph, conflicted: Collection[str]) -> set[str]:
    """Every event on an ``auth_events`` path between two events of the conflicted state set,
    endpoints included (v12).

    An event X is on such a path iff X is reachable from some conflicted event (the forward walk
    R below) and some conflicted event is reachable from X (found by walking R's edges backwards
    from the conflicted events).
    """
    conflicted = set(conflicted)
    reachable = auth_ancestors(graph, conflicted) | conflicted
    cited_by: dict[str, list[str]] = {}
    for event_id in reachable:
        for auth_id in graph.auth_ids(event_id):
            cited_by.setdefault(auth_id, []).append(event_id)
    on_path = set(conflicted)
    pending = list(conflicted)
    while pending:
        for citer in cited_by.get(pending.pop(), ()):
            if citer not in on_path:
                on_path.add(citer)
                pending.append(citer)
    return on_path


def nearest_ancestors_within(graph: EventGraph, subset: Collection[str]) -> dict[str, set[str]]:
    """For each event of ``subset``, the events of ``subset`` in its auth chain that are reached
    without passing through another event of ``subset``.

    These are the edges of the auth DAG restricted to ``subset`` (ancestry is kept even when the
    path between two events leaves the subset); its transitive closure is "is in the auth chain
    of" on ``subset``.
    """
    # frontier(e) for e outside the subset: the nearest subset events in its auth chain.
    frontier: dict[str, frozenset[str]] = {}

    def frontier_of(start: str) -> frozenset[str]:
        # Iterative post-order walk; ``open_`` holds the events whose frontier is being built.
        stack = [start]
        open_: set[str] = set()
        while stack:
            event_id = stack[-1]
            if event_id in frontier:
                stack.pop()
                continue
            todo = [a for a in graph.auth_ids(event_id) if a not in subset and a not in frontier]
            if todo and event_id not in open_:
                open_.add(event_id)
                for a in todo:
                    if a in open_:
                        raise StateResolutionError(f"auth events form a cycle through {a}")
                stack.extend(todo)
                continue
            stack.pop()
            open_.discard(event_id)
            result: set[str] = set()
            for a in graph.auth_ids(event_id):
                if a in subset:
                    result.add(a)
                else:
                    result |= frontier[a]
            frontier[event_id] = frozenset(result)
        return frontier[start]

    parents: dict[str, set[str]] = {}
    for event_id in subset:
        found: set[str] = set()
        for a in graph.auth_ids(event_id):
            if a in subset:
                found.add(a)
            else:
                found |= frontier_of(a)
        parents[event_id] = found
    return parents


def room_create_event(
    room_version: RoomVersion, state_sets: Sequence[Mapping[StateKey, str]], graph: EventGraph
) -> PDU | None:
    """The room's ``m.room.create`` event, for the auth checks of events that do not cite it.

    From v12 (``room_id_from_create_event``) the room ID names it: ``!`` + the create event's ID
    without its ``$``. Otherwise, or if no such event is at hand, it is the create event the
    state sets agree on. Before v12 ``None`` when there is none (every event cites its own);
    from v12 that raises ``MissingEventError`` for the ID the room ID names.
    """
    candidates = sorted({s[CREATE_KEY] for s in state_sets if CREATE_KEY in s})
    if not room_version.room_id_from_create_event:
        return graph.get(candidates[0]) if len(candidates) == 1 else None
    # Every event of a room carries its room ID: ask the create events named by the state sets
    # and one event per set (the smallest ID, for determinism).
    named = set(candidates) | {min(s.values()) for s in state_sets if s}
    derived = sorted({"$" + graph.get(event_id).room_id[1:] for event_id in named})
    for event_id in derived:
        if event_id in graph and graph.get(event_id).state_tuple == CREATE_KEY:
            return graph.get(event_id)
    if len(candidates) == 1:
        return graph.get(candidates[0])
    if candidates:
        raise StateResolutionError(f"state sets disagree on the create event: {candidates}")
    raise MissingEventError(derived[0] if derived else "the create event")
