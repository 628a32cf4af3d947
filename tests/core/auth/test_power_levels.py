"""Rule "If type is m.room.power_levels": rule 10 of v1-v5 and v12, rule 9 of v6-v11."""

from __future__ import annotations

import math
from typing import Any

import pytest

from myelin.core.events import PDU
from myelin.core.room_versions import RoomVersion

from auth_scenarios import (
    ALICE,
    BOB,
    CAROL,
    DAN,
    Room,
    absent_in,
    assert_allowed,
    assert_rejected,
    each_version,
    number_in,
    rule_cases,
)


def pl(v1_5: str, v6_9: str, v10_11: str, v12: str) -> dict[str, str]:
    return {"1-5": v1_5, "6-9": v6_9, "10-11": v10_11, "12": v12}


USERS = pl("10.1", "9.1", "9.3", "10.3")
NO_PREVIOUS = pl("10.2", "9.2", "9.4", "10.5")
FIELD_CURRENT = pl("10.3.1", "9.3.1", "9.5.1", "10.6.1")
FIELD_NEW = pl("10.3.2", "9.3.2", "9.5.2", "10.6.2")
MAP_REMOVED = pl("10.4.1", "9.4.1", "9.6.1", "10.7.1")
MAP_ADDED = pl("10.5.1", "9.5.1", "9.7.1", "10.8.1")
USER_REMOVED = pl("10.6.1", "9.6.1", "9.8.1", "10.9.1")
USER_ADDED = pl("10.7.1", "9.7.1", "9.9.1", "10.10.1")
ALLOW = pl("10.8", "9.8", "9.10", "10.11")
NOTIFICATIONS_REMOVED = {"6-9": "9.4.1", "10-11": "9.6.1", "12": "10.7.1"}
NOTIFICATIONS_ADDED = {"6-9": "9.5.1", "10-11": "9.7.1", "12": "10.8.1"}
BASE: dict[str, Any] = {"ban": 50, "kick": 50, "redact": 50, "invite": 0, "state_default": 50,
                        "events_default": 0, "users_default": 0,
                        "events": {"m.room.power_levels": 50, "m.room.topic": 60},
                        "notifications": {"room": 60}}


def moderated(version: RoomVersion, **overrides: Any) -> Room:
    """BOB (50) may send power levels; CAROL has 10, DAN 50."""
    room = Room(version)
    fields = {k: v for k, v in {**BASE, **overrides}.items() if v is not None}
    room.power_levels({BOB: 50, CAROL: 10, DAN: 50}, **fields)
    room.member(BOB, "join")
    return room


def change(room: Room, sender: str = BOB, **edits: Any) -> PDU:
    """A new m.room.power_levels: the current content with ``edits`` (None removes a key)."""
    content = {**room.state[("m.room.power_levels", "")].content, **edits}
    content = {k: v for k, v in content.items() if v is not None}
    return room.event("m.room.power_levels", sender, content, state_key="")


def initial(room: Room, content: dict[str, Any]) -> PDU:
    return room.event("m.room.power_levels", ALICE, content, state_key="")


# -- validation of the new content --


@pytest.mark.parametrize(("version", "rule"), rule_cases(NO_PREVIOUS))
@pytest.mark.parametrize("users", [{}, {BOB: 50}, None])
def test_first_power_levels_allowed(version: RoomVersion, rule: str, users: Any) -> None:
    room = Room(version)
    content = {"users": users} if users is not None else {"ban": 100}
    assert_allowed(initial(room, content), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(USERS))
@pytest.mark.parametrize("users", [
    [], "users", {"bob": 1}, {"@bob": 1}, {"@bob:bad host": 1}, {BOB: "abc"}, {BOB: "1.5"},
    {BOB: True}, {BOB: None}, {BOB: [1]}, {BOB: "1_0"}, {BOB: math.inf}])
def test_power_levels_rejected_when_users_malformed(
    version: RoomVersion, rule: str, users: Any
) -> None:
    room = Room(version)
    assert_rejected(initial(room, {"users": users}), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-5": "10.2", "6-9": "9.2"}))
@pytest.mark.parametrize("value", ["50", " +50 ", "0050", "-1"])
def test_users_values_may_be_strings_before_v10(
    version: RoomVersion, rule: str, value: str
) -> None:
    room = Room(version)
    assert_allowed(initial(room, {"users": {BOB: value}}), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"10-11": "9.3", "12": "10.3"}))
def test_v10_users_values_must_be_integers(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    assert_rejected(initial(room, {"users": {BOB: "50"}}), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-5": "10.2"}))
def test_users_values_may_be_floats_in_v1_to_v5(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    assert_allowed(initial(room, {"users": {BOB: 50.57}}), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"6-9": "9.1"}))
def test_users_values_may_not_be_floats_from_v6(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    assert_rejected(initial(room, {"users": {BOB: 50.57}}), room.state, rule)


@pytest.mark.parametrize("version", each_version("1-5"))
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_v1_floaty_power_levels_reject_infinity_and_nan(version: RoomVersion, value: float) -> None:
    room = Room(version)
    assert_rejected(initial(room, {"ban": value}), room.state, "v1-floaty-power-levels")
    assert_rejected(initial(room, {"events": {"m.x": value}}), room.state,
                    "v1-floaty-power-levels")


@pytest.mark.parametrize(("version", "rule"), rule_cases({"10-11": "9.1", "12": "10.1"}))
@pytest.mark.parametrize("field", ["users_default", "events_default", "state_default", "ban",
                                   "redact", "kick", "invite"])
@pytest.mark.parametrize("value", ["50", 50.0, True, None])
def test_v10_non_integer_levels_rejected(
    version: RoomVersion, rule: str, field: str, value: object
) -> None:
    room = Room(version)
    assert_rejected(initial(room, {field: value}), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"10-11": "9.2", "12": "10.2"}))
@pytest.mark.parametrize("field", ["events", "notifications"])
@pytest.mark.parametrize("value", [{"k": "50"}, {"k": 1.5}, [], 50])
def test_v10_non_integer_level_maps_rejected(
    version: RoomVersion, rule: str, field: str, value: object
) -> None:
    room = Room(version)
    assert_rejected(initial(room, {field: value}), room.state, rule)


@pytest.mark.parametrize("version", absent_in("1-9"))
def test_string_levels_accepted_before_v10(version: RoomVersion) -> None:
    room = Room(version)
    content = {"ban": "50", "events": {"m.x": " 20"}, "notifications": {"room": "+50"}}
    assert_allowed(initial(room, content), room.state, number_in(NO_PREVIOUS, version))


@pytest.mark.parametrize(("version", "rule"), rule_cases({"12": "10.4"}))
@pytest.mark.parametrize("creator", [ALICE, BOB])
def test_v12_rule_10_4_rejects_creators_in_users(
    version: RoomVersion, rule: str, creator: str
) -> None:
    room = Room(version, create_content={"additional_creators": [BOB]})
    assert_rejected(initial(room, {"users": {creator: 100}}), room.state, rule)


@pytest.mark.parametrize("version", absent_in("1-11"))
def test_creator_may_be_in_users_before_v12(version: RoomVersion) -> None:
    room = Room(version)
    assert_allowed(initial(room, {"users": {ALICE: 100}}), room.state,
                   number_in(NO_PREVIOUS, version))


# -- changes against the previous m.room.power_levels --


@pytest.mark.parametrize(("version", "rule"), rule_cases(FIELD_CURRENT))
@pytest.mark.parametrize("edit", [{"ban": 50}, {"ban": None}, {"ban": 10}])
def test_field_rejected_when_current_value_above_sender(
    version: RoomVersion, rule: str, edit: dict[str, Any]
) -> None:
    room = moderated(version, ban=60)
    assert_rejected(change(room, **edit), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(FIELD_NEW))
@pytest.mark.parametrize("edit", [{"kick": 51}, {"users_default": 60}, {"redact": 100}])
def test_field_rejected_when_new_value_above_sender(
    version: RoomVersion, rule: str, edit: dict[str, Any]
) -> None:
    room = moderated(version)
    assert_rejected(change(room, **edit), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(FIELD_NEW))
def test_field_added_above_sender_rejected(version: RoomVersion, rule: str) -> None:
    room = moderated(version, kick=None)
    assert_rejected(change(room, kick=60), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(MAP_REMOVED))
@pytest.mark.parametrize("events", [{"m.room.power_levels": 50}, {
    "m.room.power_levels": 50, "m.room.topic": 0}])
def test_events_entry_above_sender_may_not_be_changed_or_removed(
    version: RoomVersion, rule: str, events: dict[str, int]
) -> None:
    room = moderated(version)
    assert_rejected(change(room, events=events), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(MAP_ADDED))
def test_events_entry_above_sender_may_not_be_added(version: RoomVersion, rule: str) -> None:
    room = moderated(version)
    events = {**BASE["events"], "m.room.name": 51}
    assert_rejected(change(room, events=events), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(NOTIFICATIONS_REMOVED))
def test_v6_notifications_above_sender_may_not_be_changed(version: RoomVersion, rule: str) -> None:
    room = moderated(version)
    assert_rejected(change(room, notifications={"room": 0}), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(NOTIFICATIONS_ADDED))
def test_v6_notifications_above_sender_may_not_be_added(version: RoomVersion, rule: str) -> None:
    room = moderated(version, notifications={"room": 0})
    assert_rejected(change(room, notifications={"room": 60}), room.state, rule)


@pytest.mark.parametrize("version", absent_in("1-5"))
def test_notifications_not_limited_before_v6(version: RoomVersion) -> None:
    room = moderated(version)
    assert_allowed(change(room, notifications={"room": 0, "other": 99}), room.state,
                   number_in(ALLOW, version))


@pytest.mark.parametrize(("version", "rule"), rule_cases(USER_REMOVED))
@pytest.mark.parametrize("dan", [None, 40])
def test_users_at_or_above_sender_may_not_be_changed_or_removed(
    version: RoomVersion, rule: str, dan: int | None
) -> None:
    room = moderated(version)
    users = {**room.state[("m.room.power_levels", "")].content["users"], DAN: dan}
    users = {user: level for user, level in users.items() if level is not None}
    assert_rejected(change(room, users=users), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(USER_ADDED))
@pytest.mark.parametrize("users", [{CAROL: 51}, {BOB: 51}, {"@new:example.org": 99}])
def test_users_may_not_be_raised_above_sender(
    version: RoomVersion, rule: str, users: dict[str, int]
) -> None:
    room = moderated(version)
    current = room.state[("m.room.power_levels", "")].content["users"]
    assert_rejected(change(room, users={**current, **users}), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(ALLOW))
@pytest.mark.parametrize("edit", [
    {"users": "own entry lowered"}, {"users": "carol raised to sender"}, {"ban": 40},
    {"events": {"m.room.power_levels": 50, "m.room.topic": 60, "m.room.name": 50}},
    {"ban": "same, re-encoded"},
])
def test_power_levels_change_allowed_within_sender_level(
    version: RoomVersion, rule: str, edit: dict[str, Any]
) -> None:
    room = moderated(version)
    users = dict(room.state[("m.room.power_levels", "")].content["users"])
    if edit.get("users") == "own entry lowered":
        edit = {"users": {**users, BOB: 20}}
    elif edit.get("users") == "carol raised to sender":
        edit = {"users": {**users, CAROL: 50}}
    elif edit.get("ban") == "same, re-encoded":
        edit = {"ban": 50 if version.integer_power_levels else "50"}
    assert_allowed(change(room, **edit), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"12": "10.11"}))
@pytest.mark.parametrize("creator", [ALICE, BOB])
def test_v12_creators_have_infinite_power(version: RoomVersion, rule: str, creator: str) -> None:
    room = Room(version, create_content={"additional_creators": [BOB]})
    room.power_levels({DAN: 2**53 - 1}, ban=2**53 - 1, events={"m.room.power_levels": 2**53 - 1})
    room.member(BOB, "join")
    event = change(room, sender=creator, users={DAN: 0, CAROL: 2**53 - 1}, ban=0)
    assert_allowed(event, room.state, rule)
