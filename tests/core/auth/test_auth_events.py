"""Server-server API "Auth events selection", and rule 2 (v12: rule 3), "Considering the
event's auth_events"."""

from __future__ import annotations

import pytest

from myelin.core.auth import AuthError, auth_types_for_event, check_auth, check_auth_events_list
from myelin.core.events import PDU
from myelin.core.room_versions import RoomVersion

from auth_scenarios import (
    ALICE,
    BOB,
    CAROL,
    Room,
    absent_in,
    each_version,
    rule_cases,
)
from event_builders import make_event

CREATE, POWER, JOIN_RULES = ("m.room.create", ""), ("m.room.power_levels", ""), (
    "m.room.join_rules", "")


def create_key(version: RoomVersion) -> list[tuple[str, str]]:
    return [] if version.room_id_from_create_event else [CREATE]


def setup(version: RoomVersion) -> Room:
    room = Room(version)
    room.power_levels()
    room.join_rule("invite")
    room.member(BOB, "join")
    return room


def auth_list(room: Room, *keys: tuple[str, str]) -> list[PDU]:
    return [room.state[key] for key in keys]


def rejects(
    event: PDU, auth_events: list[PDU], rule: str, rejected: frozenset[str] = frozenset()
) -> None:
    with pytest.raises(AuthError) as info:
        check_auth_events_list(event, auth_events, rejected_event_ids=rejected)
    assert info.value.rule == rule, info.value


# -- auth events selection --


@pytest.mark.parametrize("version", each_version())
def test_selection_for_create_is_empty(version: RoomVersion) -> None:
    assert auth_types_for_event(Room(version).create) == []


@pytest.mark.parametrize("version", each_version())
def test_selection_for_a_message(version: RoomVersion) -> None:
    event = Room(version).event("m.room.message", BOB, {})
    assert auth_types_for_event(event) == [*create_key(version), POWER, ("m.room.member", BOB)]


@pytest.mark.parametrize("version", each_version())
@pytest.mark.parametrize(("membership", "join_rules"), [
    ("join", True), ("invite", True), ("knock", True), ("leave", False), ("ban", False)])
def test_selection_for_membership(version: RoomVersion, membership: str, join_rules: bool) -> None:
    event = Room(version).membership_event(ALICE, BOB, membership)
    assert auth_types_for_event(event) == [
        *create_key(version), POWER, ("m.room.member", ALICE), ("m.room.member", BOB),
        *([JOIN_RULES] if join_rules else []),
    ]


@pytest.mark.parametrize("version", each_version())
def test_selection_for_own_membership_lists_member_once(version: RoomVersion) -> None:
    event = Room(version).membership_event(BOB, BOB, "leave")
    assert auth_types_for_event(event) == [*create_key(version), POWER, ("m.room.member", BOB)]


@pytest.mark.parametrize("version", each_version())
def test_selection_for_third_party_invite(version: RoomVersion) -> None:
    signed = {"mxid": BOB, "token": "tok", "signatures": {}}
    event = Room(version).membership_event(ALICE, BOB, "invite", third_party_invite={
        "display_name": "b", "signed": signed})
    assert auth_types_for_event(event)[-1] == ("m.room.third_party_invite", "tok")


@pytest.mark.parametrize("version", each_version("8-12"))
def test_selection_for_restricted_join_includes_authoriser(version: RoomVersion) -> None:
    event = Room(version).membership_event(BOB, BOB, "join",
                                           join_authorised_via_users_server=CAROL)
    assert auth_types_for_event(event)[-1] == ("m.room.member", CAROL)


@pytest.mark.parametrize("version", absent_in("1-7"))
def test_selection_ignores_authoriser_without_restricted_rooms(version: RoomVersion) -> None:
    event = Room(version).membership_event(BOB, BOB, "join",
                                           join_authorised_via_users_server=CAROL)
    assert ("m.room.member", CAROL) not in auth_types_for_event(event)


# -- rule 2 (3 in v12) --


@pytest.mark.parametrize("version", each_version())
def test_auth_events_list_keyed_by_state_key(version: RoomVersion) -> None:
    room = setup(version)
    event = room.event("m.room.message", BOB, {})
    listed = auth_list(room, *create_key(version), POWER, ("m.room.member", BOB))
    assert check_auth_events_list(event, listed) == {e.state_tuple: e for e in listed}


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-11": "2.1", "12": "3.1"}))
def test_rule_2_1_rejects_duplicate_type_and_state_key(version: RoomVersion, rule: str) -> None:
    room = setup(version)
    old_join = room.state[("m.room.member", BOB)]
    room.member(BOB, "join")
    listed = [*auth_list(room, *create_key(version), ("m.room.member", BOB)), old_join]
    rejects(room.event("m.room.message", BOB, {}), listed, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-11": "2.2", "12": "3.2"}))
def test_rule_2_2_rejects_entries_not_selected(version: RoomVersion, rule: str) -> None:
    room = setup(version)
    listed = auth_list(room, *create_key(version), ("m.room.member", BOB), JOIN_RULES)
    rejects(room.event("m.room.message", BOB, {}), listed, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-11": "2.2", "12": "3.2"}))
def test_rule_2_2_rejects_a_non_state_auth_event(version: RoomVersion, rule: str) -> None:
    room = setup(version)
    message = room.event("m.room.power_levels", ALICE, {})  # no state_key: not state
    listed = [*auth_list(room, *create_key(version), ("m.room.member", BOB)), message]
    rejects(room.event("m.room.message", BOB, {}), listed, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"12": "3.2"}))
def test_v12_rule_3_2_rejects_the_create_event_in_auth_events(
    version: RoomVersion, rule: str
) -> None:
    room = setup(version)
    rejects(room.event("m.room.message", BOB, {}), auth_list(room, CREATE, POWER), rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-11": "2.3", "12": "3.3"}))
def test_rule_2_3_rejects_rejected_auth_events(version: RoomVersion, rule: str) -> None:
    room = setup(version)
    listed = auth_list(room, *create_key(version), POWER, ("m.room.member", BOB))
    rejects(room.event("m.room.message", BOB, {}), listed, rule,
            frozenset([listed[-1].event_id]))


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-11": "2.4"}))
def test_rule_2_4_rejects_auth_events_without_create(version: RoomVersion, rule: str) -> None:
    room = setup(version)
    rejects(room.event("m.room.message", BOB, {}), auth_list(room, POWER), rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-11": "2.4"}))
def test_rule_2_4_check_auth_rejects_state_without_create(version: RoomVersion, rule: str) -> None:
    room = setup(version)
    del room.state[CREATE]
    with pytest.raises(AuthError) as info:
        check_auth(room.event("m.room.message", BOB, {}), room.state)
    assert info.value.rule == rule


@pytest.mark.parametrize("version", absent_in("12"))
def test_v12_auth_events_without_create_are_accepted(version: RoomVersion) -> None:
    room = setup(version)
    listed = auth_list(room, POWER, ("m.room.member", BOB))
    assert set(check_auth_events_list(room.event("m.room.message", BOB, {}), listed)) == {
        POWER, ("m.room.member", BOB)}


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-11": "2.5", "12": "3.4"}))
def test_rule_2_5_rejects_auth_events_of_another_room(version: RoomVersion, rule: str) -> None:
    room = setup(version)
    foreign = make_event(version, "$pl:other.org", "m.room.power_levels", ALICE, {},
                         state_key="", room_id="!elsewhere:other.org")
    listed = [*auth_list(room, *create_key(version), ("m.room.member", BOB)), foreign]
    rejects(room.event("m.room.message", BOB, {}), listed, rule)


@pytest.mark.parametrize("version", each_version())
def test_create_event_auth_events_are_not_examined(version: RoomVersion) -> None:
    """Rule 1 decides m.room.create events before rule 2 is reached."""
    room = Room(version)
    assert check_auth_events_list(room.create, []) == {}
