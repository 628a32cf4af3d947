"""Unit tests of the orderings: Kahn's algorithm with the spec's tie-breaks, the reverse
topological power ordering (sender power level, then origin_server_ts, then event_id), and the
mainline ordering (mainline position, then origin_server_ts, then event_id)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from myelin.core.events import PDU
from myelin.core.room_versions import V1, V6, V9, V10, V11, V12, RoomVersion
from myelin.core.state_res import StateResolutionError
from myelin.core.state_res.auth_chain import EventGraph
from myelin.core.state_res.ordering import (
    lexicographic_topological_sort,
    mainline,
    mainline_ordering,
    reverse_topological_power_ordering,
    sender_power_level,
)

from event_builders import make_event

ALICE, BOB, CAROL = "@alice:x", "@bob:x", "@carol:x"


class Graph:
    def __init__(self, room_version: RoomVersion = V11) -> None:
        self.room_version = room_version
        self.events: dict[str, PDU] = {}
        self.add("$create", "m.room.create", ALICE, {"creator": ALICE}, state_key="", ts=0)

    def add(
        self,
        event_id: str,
        type: str,
        sender: str,
        content: dict[str, Any] | None = None,
        *,
        auth: list[str] | None = None,
        state_key: str | None = "",
        ts: int = 0,
    ) -> str:
        auth_ids = list(auth or [])
        if type != "m.room.create" and not self.room_version.room_id_from_create_event:
            auth_ids.insert(0, "$create")
        self.events[event_id] = make_event(
            self.room_version, event_id, type, sender, content or {}, state_key=state_key,
            auth_events=auth_ids, origin_server_ts=ts,
        )
        return event_id

    def pl(self, event_id: str, users: dict[str, Any], auth: list[str] | None = None,
           ts: int = 0, **extra: Any) -> str:
        return self.add(event_id, "m.room.power_levels", ALICE, {"users": users, **extra},
                        auth=auth, ts=ts)

    @property
    def graph(self) -> EventGraph:
        return EventGraph(self.events)


# -- Kahn's algorithm --


def test_kahn_picks_the_smallest_ready_node() -> None:
    parents = {"l": {"o"}, "m": {"n", "o"}, "n": {"o"}, "o": set(), "p": {"o"}}
    order = lexicographic_topological_sort(parents, parents, lambda x: x)
    assert order == ["o", "l", "n", "m", "p"]


def test_kahn_key_decides_between_ready_nodes_only() -> None:
    parents = {"a": set(), "b": {"c"}, "c": set()}
    # b sorts first by key, but waits for its parent c.
    key = {"b": 0, "a": 1, "c": 2}
    assert lexicographic_topological_sort(parents, parents, key.__getitem__) == ["a", "c", "b"]


def test_kahn_ignores_parents_outside_the_set() -> None:
    assert lexicographic_topological_sort(["a", "b"], {"a": {"zz"}, "b": {"a"}}, str) == ["a", "b"]


def test_kahn_rejects_cycles() -> None:
    with pytest.raises(StateResolutionError):
        lexicographic_topological_sort(["a", "b"], {"a": {"b"}, "b": {"a"}}, str)


# -- sender power level --


def test_sender_power_from_the_cited_power_levels() -> None:
    g = Graph()
    g.pl("$pl", {ALICE: 100, BOB: 50}, users_default=10)
    g.add("$b", "m.room.topic", BOB, auth=["$pl"])
    g.add("$c", "m.room.topic", CAROL, auth=["$pl"])
    graph = g.graph
    assert sender_power_level(graph, g.events["$b"], None) == 50
    assert sender_power_level(graph, g.events["$c"], None) == 10


def test_sender_power_without_power_levels_is_100_for_the_creator_only() -> None:
    g = Graph(V10)
    g.add("$a", "m.room.topic", ALICE)
    g.add("$b", "m.room.topic", BOB)
    graph = g.graph
    assert sender_power_level(graph, g.events["$a"], None) == 100
    assert sender_power_level(graph, g.events["$b"], None) == 0


def test_v12_creators_have_infinite_power() -> None:
    g = Graph(V12)
    g.events["$create"].data["content"]["additional_creators"] = [CAROL]
    g.pl("$pl", {BOB: 100})
    g.add("$a", "m.room.topic", ALICE, auth=["$pl"])
    g.add("$b", "m.room.topic", BOB, auth=["$pl"])
    g.add("$c", "m.room.topic", CAROL, auth=["$pl"])
    graph, create = g.graph, g.events["$create"]
    assert sender_power_level(graph, g.events["$a"], create) == math.inf
    assert sender_power_level(graph, g.events["$b"], create) == 100
    assert sender_power_level(graph, g.events["$c"], create) == math.inf


@pytest.mark.parametrize(
    ("room_version", "value", "expected"),
    [
        (V1, " +50 ", 50),
        (V9, "050", 50),
        (V1, 50.9, 50),
        (V6, 50.9, 7),  # v6+: floats are not power levels (canonical JSON): users_default
        (V10, "50", 7),  # v10+: only integers
        (V11, True, 7),
        (V1, "5x", 7),
    ],
)
def test_power_level_values_per_room_version(
    room_version: RoomVersion, value: object, expected: int
) -> None:
    g = Graph(room_version)
    g.pl("$pl", {BOB: value}, users_default=7)
    g.add("$b", "m.room.topic", BOB, auth=["$pl"])
    assert sender_power_level(g.graph, g.events["$b"], None) == expected


# -- reverse topological power ordering --


def test_power_beats_timestamp() -> None:
    g = Graph()
    g.pl("$pl", {ALICE: 100, BOB: 50})
    g.add("$bob", "m.room.topic", BOB, auth=["$pl"], ts=1)
    g.add("$alice", "m.room.name", ALICE, auth=["$pl"], ts=2)
    order = reverse_topological_power_ordering(g.graph, ["$bob", "$alice"], None)
    assert order == ["$alice", "$bob"]


def test_equal_power_then_timestamp_then_event_id() -> None:
    g = Graph()
    g.pl("$pl", {ALICE: 100, BOB: 100})
    g.add("$z", "m.room.topic", BOB, auth=["$pl"], ts=1)
    g.add("$b", "m.room.topic", ALICE, auth=["$pl"], ts=2)
    g.add("$a", "m.room.topic", BOB, auth=["$pl"], ts=2)
    order = reverse_topological_power_ordering(g.graph, ["$a", "$b", "$z"], None)
    assert order == ["$z", "$a", "$b"]


def test_auth_ancestry_beats_power() -> None:
    """A low-power event that another cites comes first, whatever the tie-breaks say."""
    g = Graph()
    g.pl("$pl", {ALICE: 100})
    g.add("$bob-join", "m.room.member", BOB, {"membership": "join"}, state_key=BOB,
          auth=["$pl"], ts=5)
    g.add("$kick", "m.room.member", ALICE, {"membership": "leave"}, state_key=BOB,
          auth=["$pl", "$bob-join"], ts=6)
    g.add("$alice-topic", "m.room.topic", ALICE, auth=["$pl"], ts=1)
    order = reverse_topological_power_ordering(g.graph, ["$kick", "$bob-join", "$pl",
                                                         "$alice-topic"], None)
    assert order == ["$pl", "$alice-topic", "$bob-join", "$kick"]


def test_ancestry_through_events_outside_the_set_is_kept() -> None:
    """$b cites $mid, which cites $a: $a precedes $b even though $mid is not being sorted and
    $b's sender has more power."""
    g = Graph()
    g.pl("$pl", {ALICE: 100, BOB: 10})
    g.add("$a", "m.room.topic", BOB, auth=["$pl"], ts=1)
    g.add("$mid", "m.room.name", BOB, auth=["$pl", "$a"], ts=2)
    g.add("$b", "m.room.topic", ALICE, auth=["$pl", "$mid"], ts=3)
    g.add("$c", "m.room.avatar", ALICE, auth=["$pl"], ts=4)
    order = reverse_topological_power_ordering(g.graph, ["$a", "$b", "$c"], None)
    assert order == ["$c", "$a", "$b"]


# -- mainline ordering --


def mainline_room() -> Graph:
    g = Graph()
    g.pl("$p2", {ALICE: 100}, ts=1)
    g.pl("$p1", {ALICE: 100}, auth=["$p2"], ts=2)
    g.pl("$p0", {ALICE: 100}, auth=["$p1"], ts=3)
    g.pl("$side", {ALICE: 100}, auth=["$p2"], ts=4)  # forks off the mainline at P2
    g.pl("$orphan", {ALICE: 100}, ts=5)  # cites no power levels: off the mainline
    return g


def test_mainline_walks_the_power_levels_auth_events() -> None:
    g = mainline_room()
    assert mainline(g.graph, "$p0") == ["$p0", "$p1", "$p2"]


def test_mainline_positions() -> None:
    g = mainline_room()
    g.add("$at0", "m.room.topic", ALICE, auth=["$p0"], ts=10)
    g.add("$at1", "m.room.topic", ALICE, auth=["$p1"], ts=10)
    g.add("$via-side", "m.room.topic", ALICE, auth=["$side"], ts=10)  # side -> p2: position 2
    g.add("$via-orphan", "m.room.topic", ALICE, auth=["$orphan"], ts=10)  # infinite
    g.add("$none", "m.room.topic", ALICE, ts=10)  # infinite
    # The mainline events themselves: e_0 is not on its own list, so P1 is at P2's position.
    events = ["$at0", "$at1", "$via-side", "$via-orphan", "$none", "$p1", "$p0"]
    order = mainline_ordering(g.graph, events, "$p0")
    assert order == ["$none", "$via-orphan", "$p1", "$via-side", "$p0", "$at1", "$at0"]


def test_mainline_ties_break_on_timestamp_then_event_id() -> None:
    g = mainline_room()
    g.add("$b", "m.room.topic", ALICE, auth=["$p1"], ts=7)
    g.add("$a", "m.room.topic", ALICE, auth=["$p1"], ts=7)
    g.add("$c", "m.room.topic", ALICE, auth=["$p1"], ts=6)
    assert mainline_ordering(g.graph, ["$a", "$b", "$c"], "$p0") == ["$c", "$a", "$b"]


def test_mainline_without_power_levels_orders_by_timestamp() -> None:
    g = mainline_room()
    g.add("$late", "m.room.topic", ALICE, auth=["$p0"], ts=9)
    g.add("$early", "m.room.topic", ALICE, auth=["$p2"], ts=8)
    assert mainline_ordering(g.graph, ["$late", "$early"], None) == ["$early", "$late"]
