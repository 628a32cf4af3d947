"""The well-known state resolution v2 scenarios, for every room version using v2 (2-11) and for
v2.1 (12), built as DAGs whose merges are resolved by ``resolve_state`` itself.

Each test names the events it adds to the initial room and the chains of prev events; the
assertion is the state at END, limited to the keys that changed since START plus the keys of
the expected events.
"""

from __future__ import annotations

import pytest

from myelin.core.auth import auth_types_for_event, check_auth
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, StateResolution

from state_res_scenarios import (
    ALICE,
    BAN,
    BOB,
    CHARLIE,
    EVELYN,
    INITIAL_EDGES,
    JOIN,
    Node,
    build_room,
    changed_state_at_end,
    event_id,
    expected_state,
    member,
    message,
    power_levels,
    topic,
)

V2_VERSIONS = [
    v for v in KNOWN_ROOM_VERSIONS.values() if v.state_resolution is not StateResolution.V1
]


def version_id(room_version: RoomVersion) -> str:
    return f"v{room_version.identifier}-{room_version.state_resolution.value}"


pytestmark = pytest.mark.parametrize("room_version", V2_VERSIONS, ids=version_id)


def check(
    room_version: RoomVersion, nodes: list[Node], edges: list[list[str]], expected: list[str]
) -> None:
    room = build_room(room_version, nodes, edges)
    assert changed_state_at_end(room, expected) == expected_state(room, expected)


def test_initial_room_is_authorised(room_version: RoomVersion) -> None:
    """Sanity: every initial event passes the auth rules against its own auth events."""
    room = build_room(room_version, [], [["END", "START"]])
    create = room.event("CREATE")
    for name in INITIAL_EDGES[:-1]:
        event = room.event(name)
        auth_state = {room.events[a].state_tuple: room.events[a] for a in event.auth_event_ids}
        auth_state[create.state_tuple] = create
        assert set(auth_state) <= {*auth_types_for_event(event), create.state_tuple}
        check_auth(event, auth_state)


def test_ban_vs_power_levels(room_version: RoomVersion) -> None:
    """Alice bans Bob while Bob, concurrently, sends power levels: the ban wins and Bob's power
    levels (authorised by a membership he no longer has) lose."""
    nodes = [
        power_levels("PA", ALICE, {ALICE: 100, BOB: 50}),
        member("MA", ALICE, ALICE, JOIN),
        member("MB", ALICE, BOB, BAN),
        power_levels("PB", BOB, {ALICE: 100, BOB: 50}),
    ]
    edges = [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]]
    check(room_version, nodes, edges, ["PA", "MA", "MB"])


def test_join_rule_evasion(room_version: RoomVersion) -> None:
    """Evelyn joins concurrently with Alice closing the room: the join rules win, the join is
    not in the resolved state."""
    nodes = [
        Node("JR", ALICE, "m.room.join_rules", "", {"join_rule": "invite"}),
        member("ME", EVELYN, EVELYN, JOIN),
    ]
    edges = [["END", "JR", "START"], ["END", "ME", "START"]]
    check(room_version, nodes, edges, ["JR"])


def test_offtopic_power_levels(room_version: RoomVersion) -> None:
    """A chain of power level changes (Alice → Bob → Charlie) against the older power levels
    on the other fork: the newest of the chain, each authorised by the previous, wins."""
    nodes = [
        power_levels("PA", ALICE, {ALICE: 100, BOB: 50}),
        power_levels("PB", BOB, {ALICE: 100, BOB: 50, CHARLIE: 50}),
        power_levels("PC", CHARLIE, {ALICE: 100, BOB: 50, CHARLIE: 0}),
    ]
    edges = [["END", "PC", "PB", "PA", "START"], ["END", "PA"]]
    check(room_version, nodes, edges, ["PC"])


def test_topic_basic(room_version: RoomVersion) -> None:
    """Alice demotes Bob (PA2) while Bob re-sends power levels and sets a topic: Alice's power
    levels and topic win, Bob's topic is not authorised any more."""
    nodes = [
        topic("T1", ALICE),
        power_levels("PA1", ALICE, {ALICE: 100, BOB: 50}),
        topic("T2", ALICE),
        power_levels("PA2", ALICE, {ALICE: 100, BOB: 0}),
        power_levels("PB", BOB, {ALICE: 100, BOB: 50}),
        topic("T3", BOB),
    ]
    edges = [["END", "PA2", "T2", "PA1", "T1", "START"], ["END", "T3", "PB", "PA1"]]
    check(room_version, nodes, edges, ["PA2", "T2"])


def test_topic_reset(room_version: RoomVersion) -> None:
    """Bob sets a topic, then is banned; a fork still at the old topic merges: Bob's topic is
    gone with him, the topic resets to Alice's T1."""
    nodes = [
        topic("T1", ALICE),
        power_levels("PA", ALICE, {ALICE: 100, BOB: 50}),
        topic("T2", BOB),
        member("MB", ALICE, BOB, BAN),
    ]
    edges = [["END", "MB", "T2", "PA", "T1", "START"], ["END", "T1"]]
    check(room_version, nodes, edges, ["T1", "MB", "PA"])


def test_topic(room_version: RoomVersion) -> None:
    """As topic basic, with a merge (MZ1) in the middle and a later topic T4 from Alice."""
    nodes = [
        topic("T1", ALICE),
        power_levels("PA1", ALICE, {ALICE: 100, BOB: 50}),
        topic("T2", ALICE),
        power_levels("PA2", ALICE, {ALICE: 100, BOB: 0}),
        power_levels("PB", BOB, {ALICE: 100, BOB: 50}),
        topic("T3", BOB),
        message("MZ1", "@zara:example.com"),
        topic("T4", ALICE),
    ]
    edges = [
        ["END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"],
        ["END", "MZ1", "T3", "PB", "PA1"],
    ]
    check(room_version, nodes, edges, ["T4", "PA2"])


def test_mainline_sort(room_version: RoomVersion) -> None:
    """T3 cites the newest power levels PA2, T4 (sent later) the older PB: mainline ordering
    applies T4 first, so T3 wins; plain timestamp order would have picked T4."""
    nodes = [
        topic("T1", ALICE),
        power_levels("PA1", ALICE, {ALICE: 100, BOB: 50}),
        topic("T2", ALICE),
        power_levels(
            "PA2", ALICE, {ALICE: 100, BOB: 50}, events={"m.room.power_levels": 100}
        ),
        power_levels("PB", BOB, {ALICE: 100, BOB: 50}),
        topic("T3", BOB),
        topic("T4", ALICE),
    ]
    edges = [
        ["END", "T3", "PA2", "T2", "PA1", "T1", "START"],
        ["END", "T4", "PB", "PA1"],
    ]
    check(room_version, nodes, edges, ["T3", "PA2"])


def test_simple_fork_merges_both_joins(room_version: RoomVersion) -> None:
    """Two users join concurrently in a public room: both joins are in the merged state."""
    nodes = [
        member("ME", EVELYN, EVELYN, JOIN),
        member("MF", "@frank:example.com", "@frank:example.com", JOIN),
    ]
    edges = [["END", "ME", "START"], ["END", "MF", "START"]]
    room = build_room(room_version, nodes, edges)
    end = room.state_after["END"]
    assert end[("m.room.member", EVELYN)] == event_id("ME")
    assert end[("m.room.member", "@frank:example.com")] == event_id("MF")
