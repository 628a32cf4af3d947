"""Rule 4 of room versions 1-5, "If type is m.room.aliases" (removed in v6)."""

from __future__ import annotations

import pytest

from myelin.core.room_versions import RoomVersion

from auth_scenarios import (
    BOB,
    EVE,
    FINAL_ALLOW,
    Room,
    absent_in,
    assert_allowed,
    assert_rejected,
    number_in,
    rule_cases,
)

SENDER_JOINED = {"1-5": "6", "6-11": "5", "12": "6"}


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-5": "4.1"}))
def test_aliases_rejected_without_state_key(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    event = room.event("m.room.aliases", EVE, {"aliases": ["#a:elsewhere.example"]})
    assert_rejected(event, room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-5": "4.2"}))
@pytest.mark.parametrize("state_key", ["example.org", "", "@eve:elsewhere.example"])
def test_aliases_rejected_when_state_key_not_senders_domain(
    version: RoomVersion, rule: str, state_key: str
) -> None:
    room = Room(version)
    event = room.event("m.room.aliases", EVE, {"aliases": []}, state_key=state_key)
    assert_rejected(event, room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-5": "4.3"}))
def test_aliases_allowed_for_own_domain_even_when_not_joined(
    version: RoomVersion, rule: str
) -> None:
    room = Room(version)
    room.power_levels(state_default=100)
    event = room.event("m.room.aliases", EVE, {"aliases": []}, state_key="elsewhere.example")
    assert_allowed(event, room.state, rule)


@pytest.mark.parametrize("version", absent_in("6-12"))
def test_aliases_need_membership_from_v6(version: RoomVersion) -> None:
    room = Room(version)
    event = room.event("m.room.aliases", EVE, {"aliases": []}, state_key="elsewhere.example")
    assert_rejected(event, room.state, number_in(SENDER_JOINED, version))


@pytest.mark.parametrize("version", absent_in("6-12"))
def test_aliases_are_ordinary_state_from_v6(version: RoomVersion) -> None:
    room = Room(version)
    room.power_levels(state_default=0)
    room.member(BOB, "join")
    event = room.event("m.room.aliases", BOB, {"aliases": []}, state_key="other.org")
    assert_allowed(event, room.state, number_in(FINAL_ALLOW, version))
    no_state_key = room.event("m.room.aliases", BOB, {"aliases": []})
    assert_allowed(no_state_key, room.state, number_in(FINAL_ALLOW, version))
