"""Room DAGs for state resolution tests, built the way a server builds them.

A scenario is a list of ``Node``s (who sends what) and chains of ``prev_events`` edges. Events
are created in topological order (ties broken by node name); the state before each one is the
resolution of the states after its prev events; its ``auth_events`` are picked from that state
by the auth events selection, and its ``origin_server_ts`` is its position in that order. The
scenarios of the ecosystem's well-known state resolution suite are stated this way: every graph
starts with ``INITIAL_NODES`` (create, Alice joins, power levels with Alice at 100, public join
rules, Bob, Charlie and Zara join, then a message "START"), and the assertion is about the
state at a final message "END".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from myelin.core.auth import auth_types_for_event
from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import RoomVersion
from myelin.core.state_res import resolve_state
from myelin.core.state_res.ordering import lexicographic_topological_sort

from event_builders import make_event

ALICE = "@alice:example.com"
BOB = "@bob:example.com"
CHARLIE = "@charlie:example.com"
EVELYN = "@evelyn:example.com"
ZARA = "@zara:example.com"

CREATE_ID = "$CREATE:example.com"
# v12 names the room after its create event; earlier versions accept any room ID, so use it
# everywhere.
ROOM_ID = "!CREATE:example.com"

JOIN = {"membership": "join"}
LEAVE = {"membership": "leave"}
BAN = {"membership": "ban"}
INVITE = {"membership": "invite"}


@dataclass(frozen=True)
class Node:
    name: str
    sender: str
    type: str
    state_key: str | None = None
    content: Mapping[str, Any] = field(default_factory=dict)

    @property
    def event_id(self) -> str:
        return event_id(self.name)


def event_id(name: str) -> str:
    return f"${name}:example.com"


def member(name: str, sender: str, target: str, content: Mapping[str, Any]) -> Node:
    return Node(name, sender, "m.room.member", target, content)


def power_levels(name: str, sender: str, users: Mapping[str, int], **extra: Any) -> Node:
    return Node(name, sender, "m.room.power_levels", "", {"users": dict(users), **extra})


def topic(name: str, sender: str) -> Node:
    return Node(name, sender, "m.room.topic", "", {"topic": name})


def message(name: str, sender: str) -> Node:
    return Node(name, sender, "m.room.message", None, {"body": name})


INITIAL_NODES = [
    Node("CREATE", ALICE, "m.room.create", "", {"creator": ALICE}),
    member("IMA", ALICE, ALICE, JOIN),
    power_levels("IPOWER", ALICE, {ALICE: 100}),
    Node("IJR", ALICE, "m.room.join_rules", "", {"join_rule": "public"}),
    member("IMB", BOB, BOB, JOIN),
    member("IMC", CHARLIE, CHARLIE, JOIN),
    member("IMZ", ZARA, ZARA, JOIN),
    message("START", ZARA),
    message("END", ZARA),
]
INITIAL_EDGES = ["START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"]


def adapt_content(room_version: RoomVersion, node: Node) -> dict[str, Any]:
    """v12 creators have infinite power and may not be listed in power levels: drop them."""
    content = dict(node.content)
    if room_version.privileged_creators and node.type == "m.room.power_levels":
        content["users"] = {u: v for u, v in content.get("users", {}).items() if u != ALICE}
    return content


@dataclass
class Room:
    room_version: RoomVersion
    events: dict[str, PDU]  # by event ID
    state_after: dict[str, dict[StateKey, str]]  # by node name
    order: list[str]  # node names, in creation order

    def event(self, name: str) -> PDU:
        return self.events[event_id(name)]

    def state(self, *names: str, at: str = "START") -> dict[StateKey, str]:
        """The state after ``at`` with the named events put over it."""
        state = dict(self.state_after[at])
        for name in names:
            state[self.event(name).state_tuple] = event_id(name)
        return state


def build_room(
    room_version: RoomVersion,
    nodes: Iterable[Node],
    edges: Iterable[Sequence[str]],
    *,
    with_initial: bool = True,
) -> Room:
    """Create the events of ``nodes`` (plus ``INITIAL_NODES``) joined by ``edges``: each chain
    [A, B, C] says A's prev event is B and B's is C."""
    all_nodes = {n.name: n for n in ([*INITIAL_NODES] if with_initial else [])}
    all_nodes.update({n.name: n for n in nodes})
    prevs: dict[str, set[str]] = {name: set() for name in all_nodes}
    chains = [INITIAL_EDGES, *edges] if with_initial else list(edges)
    for chain in chains:
        for child, parent in pairwise(chain):
            prevs[child].add(parent)

    order = lexicographic_topological_sort(all_nodes, prevs, lambda name: name)
    room = Room(room_version, {}, {}, order)
    for ts, name in enumerate(order, start=1):
        node = all_nodes[name]
        parents = sorted(prevs[name])
        if not parents:
            state_before: dict[StateKey, str] = {}
        elif len(parents) == 1:
            state_before = dict(room.state_after[parents[0]])
        else:
            state_before = resolve_state(
                room_version, [room.state_after[p] for p in parents], room.events
            )
        draft = _make(room_version, node, [], [], ts)
        auth_ids = sorted(
            {state_before[k] for k in auth_types_for_event(draft) if k in state_before}
        )
        if node.type == "m.room.create":
            auth_ids = []
        event = _make(room_version, node, [event_id(p) for p in parents], auth_ids, ts)
        room.events[event.event_id] = event
        state_after = dict(state_before)
        if node.state_key is not None:
            state_after[(node.type, node.state_key)] = event.event_id
        room.state_after[name] = state_after
    return room


def _make(
    room_version: RoomVersion,
    node: Node,
    prev_events: list[str],
    auth_events: list[str],
    ts: int,
) -> PDU:
    return make_event(
        room_version,
        node.event_id,
        node.type,
        node.sender,
        adapt_content(room_version, node),
        state_key=node.state_key,
        prev_events=prev_events,
        auth_events=auth_events,
        depth=ts,
        origin_server_ts=ts,
        room_id=ROOM_ID,
    )


def changed_state_at_end(room: Room, expected_names: Iterable[str]) -> dict[StateKey, str | None]:
    """The state at END restricted to the keys of the expected events and to the keys whose
    value differs from the state at START (the well-known suite's assertion); a key the state
    at END lost reads as None."""
    expected_keys = {room.event(name).state_tuple for name in expected_names}
    start, end = room.state_after["START"], room.state_after["END"]
    keys = expected_keys | {k for k in start.keys() | end.keys() if start.get(k) != end.get(k)}
    return {k: end.get(k) for k in keys}


def expected_state(room: Room, names: Iterable[str]) -> dict[StateKey, str | None]:
    return {room.event(name).state_tuple: event_id(name) for name in names}


# -- random forked rooms, for property tests --

USERS = [ALICE, BOB, CHARLIE, EVELYN, ZARA]


@dataclass
class ForkedRoom:
    room_version: RoomVersion
    events: dict[str, PDU]
    state_sets: list[dict[StateKey, str]]


@dataclass
class Branch:
    state: dict[StateKey, str]
    head: str  # the branch's latest event: the prev event of its next one

    def copy(self) -> Branch:
        return Branch(dict(self.state), self.head)


Emit = Callable[[Branch, str, str, str, dict[str, Any]], bool]


def random_forked_room(
    room_version: RoomVersion, choose: Callable[[int, int], int], max_forks: int = 4
) -> ForkedRoom:
    """A room that forks: a shared history, then branches, each starting after any earlier
    event (so branches nest), each a run of random state events (topics, names, joins, leaves,
    kicks, bans, invites, power level and join rule changes) from random users. An event is
    kept only if the auth rules allow it against its auth events, chosen from its branch's
    state; the state sets are the branches' final states.

    ``choose(lo, hi)`` picks an integer in [lo, hi]: hypothesis's draw or a seeded random.
    """
    from myelin.core.auth import AuthError, check_auth

    events: dict[str, PDU] = {}
    clock = [0]
    counter = [0]

    def emit(branch: Branch, type: str, sender: str, state_key: str,
             content: dict[str, Any]) -> bool:
        counter[0] += 1
        clock[0] += choose(0, 1)  # equal timestamps happen: tie-breaks get exercised
        name = f"${counter[0]:03d}-{type.rsplit('.', 1)[-1]}:example.com"
        def build(auth_ids: list[str]) -> PDU:
            return make_event(room_version, name, type, sender, content, state_key=state_key,
                              prev_events=[branch.head], auth_events=auth_ids,
                              origin_server_ts=clock[0], depth=counter[0], room_id=ROOM_ID)

        draft = build([])
        auth_ids = [branch.state[k] for k in auth_types_for_event(draft) if k in branch.state]
        event = build(auth_ids)
        auth_state = {events[a].state_tuple: events[a] for a in auth_ids}
        auth_state.setdefault(("m.room.create", ""), events[CREATE_ID])
        try:
            check_auth(event, auth_state)
        except AuthError:
            return False
        events[name] = event
        branch.state[event.state_tuple] = name
        branch.head = name
        return True

    # The create event has a fixed ID: v12 derives the room ID from it.
    events[CREATE_ID] = make_event(
        room_version, CREATE_ID, "m.room.create", ALICE, {"creator": ALICE}, state_key="",
        origin_server_ts=0, depth=0, room_id=ROOM_ID,
    )
    base = Branch({("m.room.create", ""): CREATE_ID}, CREATE_ID)
    emit(base, "m.room.member", ALICE, ALICE, {"membership": "join"})
    users = {BOB: 50, CHARLIE: 50} if room_version.privileged_creators \
        else {ALICE: 100, BOB: 50, CHARLIE: 50}
    emit(base, "m.room.power_levels", ALICE, "", {"users": users})
    emit(base, "m.room.join_rules", ALICE, "", {"join_rule": "public"})
    assert len(events) == 4, "the shared history must pass the auth rules"
    checkpoints = [base.copy()]
    for user in (BOB, CHARLIE, EVELYN):
        emit(base, "m.room.member", user, user, {"membership": "join"})
        checkpoints.append(base.copy())

    finals: list[dict[StateKey, str]] = []
    for _ in range(choose(1, max_forks)):
        branch = checkpoints[choose(0, len(checkpoints) - 1)].copy()
        for _ in range(choose(0, 6)):
            _random_action(room_version, branch, emit, choose)
            checkpoints.append(branch.copy())
        finals.append(branch.state)
    return ForkedRoom(room_version, events, finals)


def _random_action(
    room_version: RoomVersion, branch: Branch, emit: Emit, choose: Callable[[int, int], int]
) -> None:
    sender = USERS[choose(0, len(USERS) - 1)]
    target = USERS[choose(0, len(USERS) - 1)]
    kind = choose(0, 7)
    if kind == 0:
        emit(branch, "m.room.topic", sender, "", {"topic": f"topic {choose(0, 9)}"})
    elif kind == 1:
        emit(branch, "m.room.name", sender, "", {"name": f"name {choose(0, 9)}"})
    elif kind == 2:
        emit(branch, "m.room.member", sender, sender, {"membership": "join"})
    elif kind == 3:
        emit(branch, "m.room.member", sender, target, {"membership": "leave"})
    elif kind == 4:
        emit(branch, "m.room.member", sender, target, {"membership": "ban"})
    elif kind == 5:
        emit(branch, "m.room.member", sender, target, {"membership": "invite"})
    elif kind == 6:
        levels = [0, 50, 100]
        users = {u: levels[choose(0, 2)] for u in USERS[1:] if choose(0, 1)}
        if not room_version.privileged_creators:
            users[ALICE] = 100
        emit(branch, "m.room.power_levels", sender, "", {"users": users})
    else:
        rule = ("public", "invite")[choose(0, 1)]
        emit(branch, "m.room.join_rules", sender, "", {"join_rule": rule})
