"""m.room.member rules other than join and invite: malformed events, the v8 signature of the
join_authorised_via_users_server, leave (and kick, unban), ban, knock (v7+), unknown."""

from __future__ import annotations

import pytest

from myelin.core.room_versions import RoomVersion

from auth_scenarios import (
    ALICE,
    BOB,
    CAROL,
    DAN,
    EVE,
    Room,
    absent_in,
    assert_allowed,
    assert_rejected,
    number_in,
    rule_cases,
)

MALFORMED = {"1-5": "5.1", "6-11": "4.1", "12": "5.1"}
UNKNOWN = {"1-5": "5.6", "6": "4.6", "7": "4.7", "8-11": "4.8", "12": "5.8"}
PUBLIC_JOIN = {"1-5": "5.2.5", "6-7": "4.2.5", "8-11": "4.3.6", "12": "5.3.6"}


def leave(tail: str) -> dict[str, str]:
    return {"1-5": f"5.4.{tail}", "6-7": f"4.4.{tail}", "8-11": f"4.5.{tail}",
            "12": f"5.5.{tail}"}


def ban(tail: str) -> dict[str, str]:
    return {"1-5": f"5.5.{tail}", "6-7": f"4.5.{tail}", "8-11": f"4.6.{tail}",
            "12": f"5.6.{tail}"}


def knock(tail: str) -> dict[str, str]:
    return {"7": f"4.6.{tail}", "8-11": f"4.7.{tail}", "12": f"5.7.{tail}"}


def moderated_room(version: RoomVersion, **fields: int) -> Room:
    """BOB (50) moderates; CAROL (0) and DAN (50) are members."""
    room = Room(version)
    room.power_levels({BOB: 50, DAN: 50}, **fields)
    for user in (BOB, CAROL, DAN):
        room.member(user, "join")
    return room


# -- .1 --


@pytest.mark.parametrize(("version", "rule"), rule_cases(MALFORMED))
def test_member_rejected_without_state_key_or_membership(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    room.join_rule("public")
    assert_rejected(room.event("m.room.member", BOB, {"membership": "join"}), room.state, rule)
    assert_rejected(room.event("m.room.member", BOB, {}, state_key=BOB), room.state, rule)


# -- .2 (v8+): join_authorised_via_users_server must have signed --


@pytest.mark.parametrize(("version", "rule"), rule_cases({"8-11": "4.2.1", "12": "5.2.1"}))
@pytest.mark.parametrize("membership", ["join", "leave"])
@pytest.mark.parametrize("via", [CAROL, "not-a-user-id", 5])
def test_v8_member_rejected_when_authorising_server_did_not_sign(
    version: RoomVersion, rule: str, membership: str, via: object
) -> None:
    room = Room(version)
    room.join_rule("public")
    room.member(EVE, "join")
    event = room.event("m.room.member", EVE, {"membership": membership,
                                              "join_authorised_via_users_server": via},
                       state_key=EVE, signatures={"elsewhere.example": {"ed25519:a": "s"}})
    assert_rejected(event, room.state, rule)


@pytest.mark.parametrize("version", absent_in("1-7"))
def test_authorising_signature_not_required_before_v8(version: RoomVersion) -> None:
    room = Room(version)
    room.join_rule("public")
    event = room.membership_event(EVE, EVE, "join", join_authorised_via_users_server=CAROL)
    assert_allowed(event, room.state, number_in(PUBLIC_JOIN, version))


# -- leave --


@pytest.mark.parametrize(("version", "rule"), rule_cases(leave("1")))
@pytest.mark.parametrize("membership", ["invite", "join"])
def test_leave_allowed_for_own_invite_or_join(
    version: RoomVersion, rule: str, membership: str
) -> None:
    room = Room(version)
    room.member(BOB, membership, sender=ALICE)
    assert_allowed(room.membership_event(BOB, BOB, "leave"), room.state, rule)


@pytest.mark.parametrize(
    ("version", "rule"), rule_cases({"7": "4.4.1", "8-11": "4.5.1", "12": "5.5.1"})
)
def test_v7_leave_allowed_to_rescind_knock(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    room.member(BOB, "knock")
    assert_allowed(room.membership_event(BOB, BOB, "leave"), room.state, rule)


@pytest.mark.parametrize("version", absent_in("1-6"))
def test_leave_from_knock_not_allowed_before_v7(version: RoomVersion) -> None:
    room = Room(version)
    room.member(BOB, "knock")
    assert_rejected(room.membership_event(BOB, BOB, "leave"), room.state,
                    number_in(leave("1"), version))


@pytest.mark.parametrize(("version", "rule"), rule_cases(leave("1")))
@pytest.mark.parametrize("membership", [None, "leave", "ban"])
def test_leave_rejected_for_own_other_membership(
    version: RoomVersion, rule: str, membership: str | None
) -> None:
    room = Room(version)
    if membership:
        room.member(BOB, membership, sender=ALICE)
    assert_rejected(room.membership_event(BOB, BOB, "leave"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(leave("2")))
def test_kick_rejected_when_sender_not_joined(version: RoomVersion, rule: str) -> None:
    room = moderated_room(version)
    room.member(BOB, "leave")
    assert_rejected(room.membership_event(BOB, CAROL, "leave"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(leave("3")))
def test_unban_rejected_below_ban_level(version: RoomVersion, rule: str) -> None:
    room = moderated_room(version, ban=60, kick=50)
    room.member(CAROL, "ban", sender=ALICE)
    assert_rejected(room.membership_event(BOB, CAROL, "leave"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(leave("4")))
@pytest.mark.parametrize("target_membership", ["join", "invite", "ban", None])
def test_kick_or_unban_allowed_with_kick_and_ban_level_over_target(
    version: RoomVersion, rule: str, target_membership: str | None
) -> None:
    room = moderated_room(version, ban=50, kick=50)
    if target_membership:
        room.member(CAROL, target_membership, sender=ALICE)
    else:
        del room.state[("m.room.member", CAROL)]
    assert_allowed(room.membership_event(BOB, CAROL, "leave"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(leave("5")))
@pytest.mark.parametrize(("kick", "target"), [(51, CAROL), (50, DAN), (0, ALICE)])
def test_kick_rejected_below_kick_level_or_target_level(
    version: RoomVersion, rule: str, kick: int, target: str
) -> None:
    room = moderated_room(version, kick=kick)
    assert_rejected(room.membership_event(BOB, target, "leave"), room.state, rule)


# -- ban --


@pytest.mark.parametrize(("version", "rule"), rule_cases(ban("1")))
def test_ban_rejected_when_sender_not_joined(version: RoomVersion, rule: str) -> None:
    room = moderated_room(version)
    room.member(BOB, "leave")
    assert_rejected(room.membership_event(BOB, CAROL, "ban"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(ban("2")))
@pytest.mark.parametrize("target", [CAROL, EVE])
def test_ban_allowed_with_ban_level_over_target(
    version: RoomVersion, rule: str, target: str
) -> None:
    room = moderated_room(version, ban=50)
    assert_allowed(room.membership_event(BOB, target, "ban"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(ban("3")))
@pytest.mark.parametrize(("ban_level", "target"), [(51, CAROL), (50, DAN), (0, ALICE)])
def test_ban_rejected_below_ban_level_or_target_level(
    version: RoomVersion, rule: str, ban_level: int, target: str
) -> None:
    room = moderated_room(version, ban=ban_level)
    assert_rejected(room.membership_event(BOB, target, "ban"), room.state, rule)


# -- knock (v7+) --


def knock_room(version: RoomVersion, join_rule: str = "knock") -> Room:
    room = Room(version)
    room.join_rule(join_rule)
    return room


@pytest.mark.parametrize(("version", "rule"), rule_cases(knock("3")))
@pytest.mark.parametrize("membership", [None, "leave"])
def test_v7_knock_allowed_when_join_rule_knock(
    version: RoomVersion, rule: str, membership: str | None
) -> None:
    room = knock_room(version)
    if membership:
        room.member(EVE, membership)
    assert_allowed(room.membership_event(EVE, EVE, "knock"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"10-11": "4.7.3", "12": "5.7.3"}))
def test_v10_knock_allowed_when_join_rule_knock_restricted(
    version: RoomVersion, rule: str
) -> None:
    room = knock_room(version, "knock_restricted")
    assert_allowed(room.membership_event(EVE, EVE, "knock"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(knock("1")))
@pytest.mark.parametrize("join_rule", ["public", "invite", "restricted", "private"])
def test_v7_knock_rejected_when_join_rule_not_knock(
    version: RoomVersion, rule: str, join_rule: str
) -> None:
    room = knock_room(version, join_rule)
    assert_rejected(room.membership_event(EVE, EVE, "knock"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"7": "4.6.1", "8-9": "4.7.1"}))
def test_knock_restricted_does_not_allow_knocking_before_v10(
    version: RoomVersion, rule: str
) -> None:
    room = knock_room(version, "knock_restricted")
    assert_rejected(room.membership_event(EVE, EVE, "knock"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(knock("2")))
def test_v7_knock_rejected_when_sender_not_state_key(version: RoomVersion, rule: str) -> None:
    room = knock_room(version)
    assert_rejected(room.membership_event(ALICE, EVE, "knock"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(knock("4")))
@pytest.mark.parametrize("membership", ["ban", "invite", "join"])
def test_v7_knock_rejected_when_banned_invited_or_joined(
    version: RoomVersion, rule: str, membership: str
) -> None:
    room = knock_room(version)
    room.member(EVE, membership, sender=ALICE)
    assert_rejected(room.membership_event(EVE, EVE, "knock"), room.state, rule)


@pytest.mark.parametrize("version", absent_in("1-6"))
def test_knock_is_an_unknown_membership_before_v7(version: RoomVersion) -> None:
    room = knock_room(version)
    assert_rejected(room.membership_event(EVE, EVE, "knock"), room.state,
                    number_in(UNKNOWN, version))


# -- unknown memberships --


@pytest.mark.parametrize(("version", "rule"), rule_cases(UNKNOWN))
@pytest.mark.parametrize("membership", ["foo", "JOIN", 1, None])
def test_member_rejected_when_membership_unknown(
    version: RoomVersion, rule: str, membership: object
) -> None:
    room = Room(version)
    room.join_rule("public")
    event = room.event("m.room.member", BOB, {"membership": membership}, state_key=BOB)
    assert_rejected(event, room.state, rule)
