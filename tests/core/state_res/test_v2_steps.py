"""The pieces of state resolution v2: partition into unconflicted/conflicted, power events,
step 1's set X, the iterative auth checks' fallback to auth events, and step 5."""

from __future__ import annotations

from typing import Any

import pytest

from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import V11, V12, RoomVersion
from myelin.core.state_res import MissingEventError, resolve_state
from myelin.core.state_res.auth_chain import EventGraph
from myelin.core.state_res.v2 import (
    is_power_event,
    iterative_auth_checks,
    partition,
    power_events_with_auth_chains,
)

from event_builders import make_event

ALICE, BOB, CAROL = "@alice:x.org", "@bob:x.org", "@carol:x.org"
PL_KEY: StateKey = ("m.room.power_levels", "")


class Room:
    """create, Alice joins, power levels (Alice 100, Bob 50), public join rules, Bob and Carol
    join. Auth events are given by name; pre-v12 events also cite the create event."""

    def __init__(self, room_version: RoomVersion = V11) -> None:
        self.room_version = room_version
        self.events: dict[str, PDU] = {}
        self.ts = 0
        self.add("$create", "m.room.create", ALICE, "", {"creator": ALICE}, [])
        self.add("$alice", "m.room.member", ALICE, ALICE, {"membership": "join"}, [])
        self.add("$pl0", "m.room.power_levels", ALICE, "", self.levels({BOB: 50}), ["$alice"])
        self.add("$jr", "m.room.join_rules", ALICE, "", {"join_rule": "public"},
                 ["$alice", "$pl0"])
        self.add("$bob", "m.room.member", BOB, BOB, {"membership": "join"}, ["$pl0", "$jr"])
        self.add("$carol", "m.room.member", CAROL, CAROL, {"membership": "join"},
                 ["$pl0", "$jr"])

    def levels(self, users: dict[str, int]) -> dict[str, Any]:
        if not self.room_version.privileged_creators:
            users = {ALICE: 100, **users}
        return {"users": users}

    def add(self, event_id: str, type: str, sender: str, state_key: str | None,
            content: dict[str, Any], auth: list[str]) -> str:
        self.ts += 1
        if type != "m.room.create" and not self.room_version.room_id_from_create_event:
            auth = ["$create", *auth]
        self.events[event_id] = make_event(
            self.room_version, event_id, type, sender, content, state_key=state_key,
            auth_events=auth, origin_server_ts=self.ts, depth=self.ts,
            room_id="!create",  # v12: "!" + the create event's ID without "$"
        )
        return event_id

    def state(self, *event_ids: str) -> dict[StateKey, str]:
        out = {}
        for event_id in ("$create", "$alice", "$pl0", "$jr", "$bob", "$carol", *event_ids):
            out[self.events[event_id].state_tuple] = event_id
        return out


def test_partition() -> None:
    a = {("t", "1"): "$x", ("t", "2"): "$y", ("t", "3"): "$z"}
    b = {("t", "1"): "$x", ("t", "2"): "$w"}
    unconflicted, conflicted = partition([a, b])
    assert unconflicted == {("t", "1"): "$x"}
    # A key missing from some state set is conflicted too.
    assert conflicted == {"$y", "$w", "$z"}


@pytest.mark.parametrize(
    ("type", "sender", "state_key", "content", "expected"),
    [
        ("m.room.power_levels", ALICE, "", {}, True),
        ("m.room.join_rules", ALICE, "", {"join_rule": "invite"}, True),
        ("m.room.member", ALICE, BOB, {"membership": "leave"}, True),  # kick
        ("m.room.member", ALICE, BOB, {"membership": "ban"}, True),
        ("m.room.member", BOB, BOB, {"membership": "leave"}, False),  # leaving
        ("m.room.member", BOB, BOB, {"membership": "ban"}, False),
        ("m.room.member", ALICE, BOB, {"membership": "invite"}, False),
        ("m.room.member", BOB, BOB, {"membership": "join"}, False),
        ("m.room.topic", ALICE, "", {}, False),
        ("m.room.create", ALICE, "", {}, False),
        ("m.room.power_levels", ALICE, None, {}, False),  # not a state event
    ],
)
def test_power_events(type: str, sender: str, state_key: str | None,
                      content: dict[str, Any], expected: bool) -> None:
    event = make_event(V11, "$e", type, sender, content, state_key=state_key)
    assert is_power_event(event) is expected


def test_x_holds_conflicted_events_reached_through_unconflicted_ones() -> None:
    """Bob (a moderator) sends power levels $pl-bob citing his join $bob, then changes his
    display name on one fork; on the other, Alice kicks Carol citing $pl-bob. $bob is conflicted
    and in the auth chain of the kick through $pl-bob, which is not: $bob is in X."""
    room = Room()
    room.add("$pl-bob", "m.room.power_levels", BOB, "", room.levels({BOB: 50, CAROL: 10}),
             ["$bob", "$pl0"])
    room.add("$bob-rename", "m.room.member", BOB, BOB, {"membership": "join", "displayname": "B"},
             ["$bob", "$pl-bob", "$jr"])
    room.add("$kick", "m.room.member", ALICE, CAROL, {"membership": "leave"},
             ["$alice", "$pl-bob", "$carol"])
    sets = [room.state("$pl-bob"), room.state("$pl-bob", "$bob-rename", "$kick")]
    _, conflicted = partition(sets)
    assert conflicted == {"$bob", "$bob-rename", "$carol", "$kick"}
    assert power_events_with_auth_chains(EventGraph(room.events), conflicted) == {
        "$kick", "$carol", "$bob"
    }
    resolved = resolve_state(V11, sets, room.events)
    assert resolved[("m.room.member", BOB)] == "$bob-rename"
    assert resolved[("m.room.member", CAROL)] == "$kick"


def test_iterative_auth_checks_fall_back_to_the_events_auth_events() -> None:
    """A key the auth rules need but the state lacks is read from the event's auth events."""
    room = Room()
    room.add("$topic", "m.room.topic", BOB, "", {"topic": "t"}, ["$bob", "$pl0"])
    graph = EventGraph(room.events)
    create = room.events["$create"]
    # No power levels and no membership for Bob in the state: both come from auth events.
    state = iterative_auth_checks(graph, ["$topic"], {}, create)
    assert state == {("m.room.topic", ""): "$topic"}
    # With Bob's membership in the state being a leave, it is the state that counts.
    room.add("$bob-leaves", "m.room.member", BOB, BOB, {"membership": "leave"},
             ["$bob", "$pl0"])
    state = iterative_auth_checks(
        EventGraph(room.events), ["$topic"], {("m.room.member", BOB): "$bob-leaves"}, create
    )
    assert ("m.room.topic", "") not in state


@pytest.mark.parametrize("room_version", [V11, V12], ids=["v2", "v2.1"])
def test_unconflicted_state_wins_over_auth_difference(room_version: RoomVersion) -> None:
    """A forked power levels event $pl-fork reaches the full conflicted set through the auth
    difference (Carol's topic cites it) and passes the auth checks, so the partial state holds
    it and Carol's topic passes under it; step 5 puts the unconflicted $pl2 back."""
    room = Room(room_version)
    room.add("$pl2", "m.room.power_levels", ALICE, "", room.levels({BOB: 50}),
             ["$alice", "$pl0"])
    room.add("$pl-fork", "m.room.power_levels", ALICE, "", room.levels({CAROL: 50}),
             ["$alice", "$pl0"])
    room.add("$t-carol", "m.room.topic", CAROL, "", {"topic": "c"}, ["$carol", "$pl-fork"])
    sets = [room.state("$pl2"), room.state("$pl2", "$t-carol")]
    resolved = resolve_state(room_version, sets, room.events)
    assert resolved[PL_KEY] == "$pl2"
    assert resolved[("m.room.topic", "")] == "$t-carol"


@pytest.mark.parametrize(("room_version", "kept"), [(V11, False), (V12, True)],
                         ids=["v2", "v2.1"])
def test_unconflicted_power_levels_do_not_authorise_in_v2_1(
    room_version: RoomVersion, kept: bool
) -> None:
    """Carol's topic (authorised by $pl1) is the only conflict; both forks are at $pl2, which
    demotes her. v2 checks the topic against the unconflicted state: it fails. v2.1 starts
    from the empty state and nothing puts power levels in it, so the topic is checked against
    its own auth events: it passes."""
    room = Room(room_version)
    room.add("$pl1", "m.room.power_levels", ALICE, "", room.levels({BOB: 50, CAROL: 50}),
             ["$alice", "$pl0"])
    room.add("$t-carol", "m.room.topic", CAROL, "", {"topic": "c"}, ["$carol", "$pl1"])
    room.add("$pl2", "m.room.power_levels", ALICE, "", room.levels({BOB: 50}),
             ["$alice", "$pl1"])
    sets = [room.state("$pl2"), room.state("$pl2", "$t-carol")]
    resolved = resolve_state(room_version, sets, room.events)
    assert resolved[PL_KEY] == "$pl2"
    assert (resolved.get(("m.room.topic", "")) == "$t-carol") is kept


def test_no_state_sets() -> None:
    assert resolve_state(V11, [], {}) == {}


@pytest.mark.parametrize("room_version", [V11, V12], ids=["v2", "v2.1"])
def test_missing_auth_event_is_named(room_version: RoomVersion) -> None:
    room = Room(room_version)
    room.add("$t", "m.room.topic", ALICE, "", {"topic": "t"}, ["$alice", "$pl0", "$gone"])
    with pytest.raises(MissingEventError) as info:
        resolve_state(room_version, [room.state(), room.state("$t")], room.events)
    assert info.value.event_id == "$gone"
