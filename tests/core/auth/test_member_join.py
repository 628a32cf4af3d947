"""m.room.member joins: rule 5.2 (v1-v5), 4.2 (v6-v7), 4.3 (v8-v11), 5.3 (v12), with
restricted (v8+) and knock_restricted (v10+) joins."""

from __future__ import annotations

from typing import Any

import pytest

from myelin.core.events import PDU
from myelin.core.room_versions import RoomVersion

from auth_scenarios import (
    ALICE,
    BOB,
    CAROL,
    EVE,
    Room,
    absent_in,
    assert_allowed,
    assert_rejected,
    number_in,
    rule_cases,
    versions,
)

CREATOR = {"1-5": "5.2.1", "6-7": "4.2.1", "8-11": "4.3.1", "12": "5.3.1"}
NOT_SELF = {"1-5": "5.2.2", "6-7": "4.2.2", "8-11": "4.3.2", "12": "5.3.2"}
BANNED = {"1-5": "5.2.3", "6-7": "4.2.3", "8-11": "4.3.3", "12": "5.3.3"}
INVITE_RULE = {"1-5": "5.2.4", "6-7": "4.2.4", "8-11": "4.3.4", "12": "5.3.4"}
PUBLIC = {"1-5": "5.2.5", "6-7": "4.2.5", "8-11": "4.3.6", "12": "5.3.6"}
REJECT = {"1-5": "5.2.6", "6-7": "4.2.6", "8-11": "4.3.7", "12": "5.3.7"}
RESTRICTED_MEMBER = {"8-11": "4.3.5.1", "12": "5.3.5.1"}
RESTRICTED_AUTHORISER = {"8-11": "4.3.5.2", "12": "5.3.5.2"}
RESTRICTED_ALLOW = {"8-11": "4.3.5.3", "12": "5.3.5.3"}


def join(room: Room, user: str, **content: Any) -> PDU:
    return room.membership_event(user, user, "join", **content)


def authorised_join(room: Room, user: str, via: str | None) -> PDU:
    """A restricted join, signed by the authorising server (example.org)."""
    content = {"membership": "join"}
    if via is not None:
        content["join_authorised_via_users_server"] = via
    return room.event("m.room.member", user, content, state_key=user,
                      signatures={"example.org": {"ed25519:a": "sig"}})


# -- .1: "If the only previous event is an m.room.create and the state_key is the creator" --


@pytest.mark.parametrize(("version", "rule"), rule_cases(CREATOR))
def test_join_allowed_for_creator_right_after_create(version: RoomVersion, rule: str) -> None:
    room = Room(version, join_creator=False)
    assert_allowed(join(room, ALICE), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(REJECT))
def test_creator_join_not_special_when_other_prev_events(version: RoomVersion, rule: str) -> None:
    room = Room(version, join_creator=False)
    event = room.event("m.room.member", ALICE, {"membership": "join"}, state_key=ALICE,
                       prev_events=[room.create.event_id, "$other:example.org"])
    assert_rejected(event, room.state, rule)


@pytest.mark.parametrize(
    ("version", "rule"), rule_cases({"1-5": "5.2.1", "6-7": "4.2.1", "8-10": "4.3.1"})
)
def test_join_creator_is_content_creator_before_v11(version: RoomVersion, rule: str) -> None:
    room = Room(version, join_creator=False, create_content={"creator": BOB})
    assert_allowed(join(room, BOB), room.state, rule)


@pytest.mark.parametrize("version", absent_in("11-12"))
def test_v11_join_creator_is_create_sender_not_content_creator(version: RoomVersion) -> None:
    room = Room(version, join_creator=False, create_content={"creator": BOB})
    assert_rejected(join(room, BOB), room.state, number_in(REJECT, version))
    assert_allowed(join(room, ALICE), room.state, number_in(CREATOR, version))


@pytest.mark.parametrize(("version", "rule"), rule_cases({"12": "5.3.7"}))
def test_v12_additional_creator_first_join_is_not_the_creator_join(
    version: RoomVersion, rule: str
) -> None:
    room = Room(version, join_creator=False, create_content={"additional_creators": [BOB]})
    assert_rejected(join(room, BOB), room.state, rule)


# -- .2 - .3 --


@pytest.mark.parametrize(("version", "rule"), rule_cases(NOT_SELF))
def test_join_rejected_when_sender_is_not_state_key(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    room.join_rule("public")
    assert_rejected(room.membership_event(BOB, CAROL, "join"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(BANNED))
def test_join_rejected_when_sender_banned(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    room.join_rule("public")
    room.member(BOB, "ban", sender=ALICE)
    assert_rejected(join(room, BOB), room.state, rule)


# -- .4: invite (v7+: or knock) join rule --


@pytest.mark.parametrize(("version", "rule"), rule_cases(INVITE_RULE))
@pytest.mark.parametrize("membership", ["invite", "join"])
def test_join_allowed_by_invite_rule_when_invited_or_joined(
    version: RoomVersion, rule: str, membership: str
) -> None:
    room = Room(version)
    room.join_rule("invite")
    room.member(BOB, membership, sender=ALICE)
    assert_allowed(join(room, BOB), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(REJECT))
@pytest.mark.parametrize("membership", [None, "leave", "knock"])
def test_join_rejected_by_invite_rule_when_not_invited(
    version: RoomVersion, rule: str, membership: str | None
) -> None:
    room = Room(version)
    room.join_rule("invite")
    if membership:
        room.member(BOB, membership)
    assert_rejected(join(room, BOB), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(INVITE_RULE))
def test_join_without_join_rules_event_is_invite_only(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    assert_rejected(join(room, BOB), room.state, number_in(REJECT, version))
    room.member(BOB, "invite", sender=ALICE)
    assert_allowed(join(room, BOB), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"7": "4.2.4", "8-11": "4.3.4",
                                                          "12": "5.3.4"}))
def test_v7_join_allowed_by_knock_rule_when_invited(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    room.join_rule("knock")
    room.member(BOB, "invite", sender=ALICE)
    assert_allowed(join(room, BOB), room.state, rule)


@pytest.mark.parametrize("version", absent_in("1-6"))
def test_knock_join_rule_unknown_before_v7(version: RoomVersion) -> None:
    room = Room(version)
    room.join_rule("knock")
    room.member(BOB, "invite", sender=ALICE)
    assert_rejected(join(room, BOB), room.state, number_in(REJECT, version))


# -- .5 (v8+): restricted (v10+: and knock_restricted) --



def restricted_cases(numbers: dict[str, str]) -> list[Any]:
    """(version, rule, join rule): restricted from v8, knock_restricted from v10."""
    cases = []
    for join_rule, span in (("restricted", "8-12"), ("knock_restricted", "10-12")):
        for case in rule_cases(numbers):
            version, number = case.values
            if version in versions(span):
                cases.append(pytest.param(version, number, join_rule, id=f"{case.id}-{join_rule}"))
    return cases


def restricted_room(version: RoomVersion, join_rule: str, *, invite: int = 0) -> Room:
    room = Room(version)
    room.power_levels({CAROL: 10}, invite=invite)
    room.join_rule(join_rule, allow=[{"type": "m.room_membership", "room_id": "!space:x.org"}])
    room.member(CAROL, "join")
    return room


@pytest.mark.parametrize(("version", "rule", "join_rule"), restricted_cases(RESTRICTED_MEMBER))
@pytest.mark.parametrize("membership", ["invite", "join"])
def test_restricted_join_allowed_when_invited_or_joined(
    version: RoomVersion, rule: str, join_rule: str, membership: str
) -> None:
    room = restricted_room(version, join_rule)
    room.member(BOB, membership, sender=CAROL)
    assert_allowed(join(room, BOB), room.state, rule)


@pytest.mark.parametrize(("version", "rule", "join_rule"), restricted_cases(RESTRICTED_ALLOW))
def test_restricted_join_allowed_via_joined_user_who_can_invite(
    version: RoomVersion, rule: str, join_rule: str
) -> None:
    room = restricted_room(version, join_rule, invite=10)
    assert_allowed(authorised_join(room, EVE, CAROL), room.state, rule)


@pytest.mark.parametrize(("version", "rule", "join_rule"), restricted_cases(RESTRICTED_AUTHORISER))
@pytest.mark.parametrize("problem", ["missing", "not joined", "cannot invite", "left"])
def test_restricted_join_rejected_without_valid_authoriser(
    version: RoomVersion, rule: str, join_rule: str, problem: str
) -> None:
    room = restricted_room(version, join_rule, invite=50 if problem == "cannot invite" else 0)
    via: str | None = {"missing": None, "not joined": BOB}.get(problem, CAROL)
    if problem == "left":
        room.member(CAROL, "leave")
    assert_rejected(authorised_join(room, EVE, via), room.state, rule)


@pytest.mark.parametrize("version", absent_in("1-7"))
def test_restricted_join_rule_unknown_before_v8(version: RoomVersion) -> None:
    room = restricted_room(version, "restricted")
    assert_rejected(authorised_join(room, EVE, CAROL), room.state, number_in(REJECT, version))


@pytest.mark.parametrize("version", absent_in("8-9"))
def test_knock_restricted_join_rule_unknown_before_v10(version: RoomVersion) -> None:
    room = restricted_room(version, "knock_restricted")
    assert_rejected(authorised_join(room, EVE, CAROL), room.state, number_in(REJECT, version))


# -- .6 - .7 --


@pytest.mark.parametrize(("version", "rule"), rule_cases(PUBLIC))
def test_join_allowed_when_join_rule_public(version: RoomVersion, rule: str) -> None:
    room = Room(version)
    room.join_rule("public")
    assert_allowed(join(room, BOB), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(REJECT))
@pytest.mark.parametrize("join_rule", ["private", "unknown", 7])
def test_join_rejected_when_join_rule_unknown(
    version: RoomVersion, rule: str, join_rule: object
) -> None:
    room = Room(version)
    room.send("m.room.join_rules", ALICE, {"join_rule": join_rule})
    room.member(BOB, "invite", sender=ALICE)
    assert_rejected(join(room, BOB), room.state, rule)
