"""Rules for every event other than m.room.create and m.room.member: the sender is joined,
m.room.third_party_invite, the required power level, user-owned state keys, final allow
(rules 6-9 and 12 of v1-v2, 6-9 and 11 of v3-v5, 5-8 and 10 of v6-v11, 6-9 and 11 of v12)."""

from __future__ import annotations

import pytest

from myelin.core.room_versions import RoomVersion

from auth_scenarios import (
    ALICE,
    BOB,
    CAROL,
    FINAL_ALLOW,
    Room,
    assert_allowed,
    assert_rejected,
    number_in,
    rule_cases,
)

SENDER_JOINED = {"1-5": "6", "6-11": "5", "12": "6"}
THIRD_PARTY_INVITE = {"1-5": "7.1", "6-11": "6.1", "12": "7.1"}
REQUIRED_LEVEL = {"1-5": "8", "6-11": "7", "12": "8"}
USER_STATE_KEY = {"1-5": "9", "6-11": "8", "12": "9"}


def member_room(version: RoomVersion, **fields: object) -> Room:
    room = Room(version)
    room.power_levels({BOB: 10}, **fields)
    room.member(BOB, "join")
    return room


@pytest.mark.parametrize(("version", "rule"), rule_cases(SENDER_JOINED))
@pytest.mark.parametrize("membership", [None, "invite", "leave", "ban", "knock"])
def test_event_rejected_when_sender_not_joined(
    version: RoomVersion, rule: str, membership: str | None
) -> None:
    room = Room(version)
    if membership:
        room.member(CAROL, membership, sender=ALICE)
    assert_rejected(room.event("m.room.message", CAROL, {"body": "hi"}), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(THIRD_PARTY_INVITE))
def test_third_party_invite_event_allowed_at_invite_level(
    version: RoomVersion, rule: str
) -> None:
    room = member_room(version, invite=10, state_default=100)
    event = room.event("m.room.third_party_invite", BOB, {"public_key": "k"}, state_key="t")
    assert_allowed(event, room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(THIRD_PARTY_INVITE))
def test_third_party_invite_event_rejected_below_invite_level(
    version: RoomVersion, rule: str
) -> None:
    room = member_room(version, invite=11, state_default=0)
    event = room.event("m.room.third_party_invite", BOB, {"public_key": "k"}, state_key="t")
    assert_rejected(event, room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(REQUIRED_LEVEL))
@pytest.mark.parametrize(("event_type", "state_key", "fields"), [
    ("m.room.message", None, {"events": {"m.room.message": 11}}),
    ("m.custom", None, {"events_default": 11}),
    ("m.room.topic", "", {}),  # state_default defaults to 50
    ("m.room.topic", "", {"state_default": 0, "events": {"m.room.topic": 11}}),
    ("m.room.redaction", None, {"events": {"m.room.redaction": 11}}),
])
def test_event_rejected_below_required_power_level(
    version: RoomVersion, rule: str, event_type: str, state_key: str | None,
    fields: dict[str, object],
) -> None:
    room = member_room(version, **fields)
    assert_rejected(room.event(event_type, BOB, {}, state_key=state_key), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(REQUIRED_LEVEL))
def test_state_default_is_50_without_power_levels_event(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    room.member(BOB, "join")
    assert_rejected(room.event("m.room.topic", BOB, {}, state_key=""), room.state, rule)
    allowed = room.event("m.room.topic", ALICE, {}, state_key="")  # the creator: 100 / infinite
    assert_allowed(allowed, room.state, number_in(FINAL_ALLOW, version))


@pytest.mark.parametrize(("version", "rule"), rule_cases(USER_STATE_KEY))
@pytest.mark.parametrize("state_key", [CAROL, BOB + "x", "@"])
def test_state_key_of_another_user_rejected(
    version: RoomVersion, rule: str, state_key: str
) -> None:
    room = member_room(version, state_default=0)
    event = room.event("m.custom.state", BOB, {}, state_key=state_key)
    assert_rejected(event, room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(FINAL_ALLOW))
@pytest.mark.parametrize("state_key", [BOB, "", "room", "!@not-a-user", None])
def test_event_allowed_otherwise(version: RoomVersion, rule: str, state_key: str | None) -> None:
    room = member_room(version, state_default=0)
    assert_allowed(room.event("m.custom", BOB, {}, state_key=state_key), room.state, rule)
