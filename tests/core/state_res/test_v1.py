"""State resolution v1 (room version 1): power levels, then join rules, then memberships, each
from the lowest depth up while the auth rules allow; other keys by highest depth that passes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import V1, V2
from myelin.core.state_res import MissingEventError, resolve_state

from event_builders import make_event

ALICE, BOB, CAROL = "@alice:x.org", "@bob:x.org", "@carol:x.org"
PL_KEY: StateKey = ("m.room.power_levels", "")
JR_KEY: StateKey = ("m.room.join_rules", "")
TOPIC_KEY: StateKey = ("m.room.topic", "")


class Room:
    """A v1 room: create, Alice joins, power levels (Alice 100, Bob 50), public join rules,
    Bob and Carol join; ``add`` builds more events citing the auth events given."""

    def __init__(self, room_version: Any = V1) -> None:
        self.room_version = room_version
        self.events: dict[str, PDU] = {}
        self.add("$create", 1, "m.room.create", ALICE, "", {"creator": ALICE}, [])
        self.add("$alice", 2, "m.room.member", ALICE, ALICE, {"membership": "join"},
                 ["$create"])
        self.add("$pl0", 3, "m.room.power_levels", ALICE, "",
                 {"users": {ALICE: 100, BOB: 50}}, ["$create", "$alice"])
        self.add("$jr0", 4, "m.room.join_rules", ALICE, "", {"join_rule": "public"},
                 ["$create", "$alice", "$pl0"])
        self.add("$bob", 5, "m.room.member", BOB, BOB, {"membership": "join"},
                 ["$create", "$pl0", "$jr0"])
        self.add("$carol", 6, "m.room.member", CAROL, CAROL, {"membership": "join"},
                 ["$create", "$pl0", "$jr0"])

    def add(self, event_id: str, depth: int, type: str, sender: str, state_key: str,
            content: dict[str, Any], auth: list[str]) -> str:
        self.events[event_id] = make_event(
            self.room_version, event_id, type, sender, content, state_key=state_key,
            auth_events=auth, depth=depth, origin_server_ts=depth,
        )
        return event_id

    def state(self, *event_ids: str) -> dict[StateKey, str]:
        """The base state with ``event_ids`` put over it."""
        out = {}
        for event_id in ("$create", "$alice", "$pl0", "$jr0", "$bob", "$carol", *event_ids):
            out[self.events[event_id].state_tuple] = event_id
        return out

    def resolve(self, *state_sets: dict[StateKey, str]) -> dict[StateKey, str]:
        forward = resolve_state(self.room_version, list(state_sets), self.events)
        backward = resolve_state(self.room_version, list(reversed(state_sets)), self.events)
        assert forward == backward
        return forward


def pl(room: Room, event_id: str, depth: int, sender: str, users: dict[str, int],
       auth: list[str]) -> str:
    return room.add(event_id, depth, "m.room.power_levels", sender, "", {"users": users}, auth)


AUTH_ALICE = ["$create", "$alice", "$pl0"]
AUTH_BOB = ["$create", "$bob", "$pl0"]


def test_power_levels_conflict_applies_allowed_events_in_depth_order() -> None:
    room = Room()
    pl(room, "$pl-a", 7, ALICE, {ALICE: 100, BOB: 50, CAROL: 50}, AUTH_ALICE)
    pl(room, "$pl-b", 8, ALICE, {ALICE: 100}, [*AUTH_ALICE, "$pl-a"])
    resolved = room.resolve(room.state("$pl-a"), room.state("$pl-b"))
    assert resolved[PL_KEY] == "$pl-b"


def test_power_levels_conflict_stops_at_the_first_disallowed_event() -> None:
    """$pl-a demotes Bob; Bob's $pl-b is not allowed in R = {…, $pl-a}: stop there, so the
    (allowed) $pl-c after it is not considered."""
    room = Room()
    pl(room, "$pl-a", 7, ALICE, {ALICE: 100, BOB: 0}, AUTH_ALICE)
    pl(room, "$pl-b", 8, BOB, {ALICE: 100, BOB: 50, CAROL: 10}, AUTH_BOB)
    pl(room, "$pl-c", 9, ALICE, {ALICE: 100, BOB: 0, CAROL: 20}, AUTH_ALICE)
    resolved = room.resolve(room.state("$pl-a"), room.state("$pl-b"), room.state("$pl-c"))
    assert resolved[PL_KEY] == "$pl-a"


def test_power_levels_conflict_first_event_is_taken_unchecked() -> None:
    """The lowest-depth event goes into R without an auth check."""
    room = Room()
    pl(room, "$pl-low", 4, CAROL, {ALICE: 100, CAROL: 100}, ["$create", "$carol", "$pl0"])
    pl(room, "$pl-high", 9, BOB, {ALICE: 100, BOB: 50}, AUTH_BOB)
    resolved = room.resolve(room.state("$pl-low"), room.state("$pl-high"))
    # $pl-low is in R unchecked; under it Bob has 0, so $pl-high is not allowed.
    assert resolved[PL_KEY] == "$pl-low"


def test_equal_depth_sorts_by_descending_sha1() -> None:
    """Ascending depth, then descending sha1(event_id): of two allowed events at one depth,
    the one with the smaller sha1 comes last and so wins."""
    room = Room()
    ids = ["$pl-x", "$pl-y"]
    for event_id in ids:
        pl(room, event_id, 7, ALICE, {ALICE: 100, BOB: 50}, AUTH_ALICE)
    smaller = min(ids, key=lambda e: hashlib.sha1(e.encode()).digest())
    resolved = room.resolve(room.state("$pl-x"), room.state("$pl-y"))
    assert resolved[PL_KEY] == smaller


def test_join_rules_are_resolved_under_the_resolved_power_levels() -> None:
    room = Room()
    pl(room, "$pl-a", 7, ALICE, {ALICE: 100, BOB: 0}, AUTH_ALICE)
    room.add("$jr-bob", 8, "m.room.join_rules", BOB, "", {"join_rule": "invite"}, AUTH_BOB)
    resolved = room.resolve(room.state("$pl-a"), room.state("$jr-bob"))
    assert resolved[PL_KEY] == "$pl-a"
    # [$jr0 (depth 4), $jr-bob (depth 8)]: Bob has no power under $pl-a any more.
    assert resolved[JR_KEY] == "$jr0"


def test_membership_conflict_later_ban_wins() -> None:
    room = Room()
    room.add("$carol-rename", 8, "m.room.member", CAROL, CAROL,
             {"membership": "join", "displayname": "C"}, ["$create", "$carol", "$pl0", "$jr0"])
    room.add("$ban-carol", 9, "m.room.member", ALICE, CAROL, {"membership": "ban"},
             [*AUTH_ALICE, "$carol"])
    resolved = room.resolve(room.state("$carol-rename"), room.state("$ban-carol"))
    assert resolved[("m.room.member", CAROL)] == "$ban-carol"


def test_membership_conflict_banned_user_cannot_leave_afterwards() -> None:
    room = Room()
    room.add("$ban-carol", 8, "m.room.member", ALICE, CAROL, {"membership": "ban"},
             [*AUTH_ALICE, "$carol"])
    room.add("$carol-leaves", 9, "m.room.member", CAROL, CAROL, {"membership": "leave"},
             ["$create", "$carol", "$pl0"])
    resolved = room.resolve(room.state("$ban-carol"), room.state("$carol-leaves"))
    assert resolved[("m.room.member", CAROL)] == "$ban-carol"


def test_other_conflicts_take_the_highest_depth_that_passes() -> None:
    room = Room()
    pl(room, "$pl-a", 7, ALICE, {ALICE: 100, BOB: 0}, AUTH_ALICE)
    room.add("$t-alice", 8, "m.room.topic", ALICE, "", {"topic": "a"}, AUTH_ALICE)
    room.add("$t-bob", 9, "m.room.topic", BOB, "", {"topic": "b"}, AUTH_BOB)
    room.add("$t-alice2", 6, "m.room.topic", ALICE, "", {"topic": "c"}, AUTH_ALICE)
    sets = [room.state("$pl-a", "$t-alice"), room.state("$t-bob"), room.state("$t-alice2")]
    # $t-bob is the deepest but Bob has no power under the resolved $pl-a.
    assert room.resolve(*sets)[TOPIC_KEY] == "$t-alice"


def test_other_conflicts_equal_depth_take_the_lowest_sha1() -> None:
    room = Room()
    ids = ["$t-1", "$t-2", "$t-3"]
    for event_id in ids:
        room.add(event_id, 8, "m.room.topic", ALICE, "", {"topic": event_id}, AUTH_ALICE)
    smallest = min(ids, key=lambda e: hashlib.sha1(e.encode()).digest())
    resolved = room.resolve(*(room.state(e) for e in ids))
    assert resolved[TOPIC_KEY] == smallest


def test_other_conflict_nothing_passes_leaves_the_key_out() -> None:
    room = Room()
    pl(room, "$pl-a", 7, ALICE, {ALICE: 100}, AUTH_ALICE)
    room.add("$t-bob", 8, "m.room.topic", BOB, "", {"topic": "b"}, AUTH_BOB)
    room.add("$t-carol", 8, "m.room.topic", CAROL, "", {"topic": "c"},
             ["$create", "$carol", "$pl0"])
    resolved = room.resolve(room.state("$pl-a", "$t-bob"), room.state("$pl-a", "$t-carol"))
    assert TOPIC_KEY not in resolved
    assert resolved[PL_KEY] == "$pl-a"


@pytest.mark.parametrize(("room_version", "kept"), [(V1, True), (V2, False)])
def test_key_in_only_some_states(room_version: Any, kept: bool) -> None:
    """v1: a key only one state holds is no conflict and is kept as is, even if its event
    would now fail the auth rules. v2: it is conflicted and goes through the auth checks."""
    room = Room(room_version)
    pl(room, "$pl-a", 7, ALICE, {ALICE: 100}, AUTH_ALICE)
    room.add("$t-bob", 8, "m.room.topic", BOB, "", {"topic": "b"}, AUTH_BOB)
    resolved = room.resolve(room.state("$pl-a"), room.state("$pl-a", "$t-bob"))
    assert (resolved.get(TOPIC_KEY) == "$t-bob") is kept


@pytest.mark.parametrize(("room_version", "topic"), [(V1, "$t-carol"), (V2, None)])
def test_topic_authorised_by_an_undone_promotion(room_version: Any, topic: str | None) -> None:
    """Bob promotes Carol, who sets the topic on her fork; on the other fork Alice's later
    power levels demote both. v1 keeps Carol's topic (its key is in one state only, so it is
    no conflict), though it fails under the resolved power levels: the kind of state v1 is
    known to let through. v2 checks it and drops it."""
    room = Room(room_version)
    pl(room, "$promote-carol", 7, BOB, {ALICE: 100, BOB: 50, CAROL: 50}, AUTH_BOB)
    pl(room, "$demote-both", 8, ALICE, {ALICE: 100}, [*AUTH_ALICE, "$promote-carol"])
    room.add("$t-carol", 9, "m.room.topic", CAROL, "", {"topic": "c"},
             ["$create", "$carol", "$promote-carol"])
    resolved = room.resolve(room.state("$demote-both"), room.state("$promote-carol", "$t-carol"))
    assert resolved[PL_KEY] == "$demote-both"
    assert resolved.get(TOPIC_KEY) == topic


def test_missing_event_raises() -> None:
    room = Room()
    with pytest.raises(MissingEventError) as info:
        resolve_state(V1, [room.state(), {**room.state(), PL_KEY: "$nowhere"}], room.events)
    assert info.value.event_id == "$nowhere"
