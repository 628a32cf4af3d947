"""m.room.member invites: rule 5.3 (v1-v5), 4.3 (v6-v7), 4.4 (v8-v11), 5.4 (v12), including
third-party invites with real Ed25519 signatures."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.signing import SigningKey

from myelin.core.events import PDU
from myelin.core.room_versions import RoomVersion

from auth_scenarios import (
    ALICE,
    BOB,
    CAROL,
    Room,
    assert_allowed,
    assert_rejected,
    public_key_of,
    rule_cases,
    signed_block,
)


def numbers(tail: str) -> dict[str, str]:
    """The invite rule ``tail`` ("2", "1.7.1", ...) in each era of the numbering."""
    return {"1-5": f"5.3.{tail}", "6-7": f"4.3.{tail}", "8-11": f"4.4.{tail}",
            "12": f"5.4.{tail}"}


KEY = SigningKey(b"\x01" * 32)
OTHER_KEY = SigningKey(b"\x02" * 32)
TOKEN = "abc123"


def invite_room(version: RoomVersion, *, invite: int = 0) -> Room:
    room = Room(version)
    room.power_levels({BOB: 10}, invite=invite)
    room.member(BOB, "join")
    return room


def third_party_room(version: RoomVersion, **invite_content: Any) -> Room:
    room = invite_room(version)
    content = {"display_name": "c...@example.com", "key_validity_url": "https://id/valid",
               "public_key": public_key_of(KEY)}
    room.send("m.room.third_party_invite", BOB, {**content, **invite_content}, TOKEN)
    return room


def third_party_invite(room: Room, signed: object, target: str = CAROL, **extra: Any) -> PDU:
    block = {"display_name": "c...@example.com", "signed": signed, **extra}
    if signed is None:
        del block["signed"]
    return room.membership_event(BOB, target, "invite", third_party_invite=block)


# -- plain invites --


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("4")))
def test_invite_allowed_when_sender_has_invite_level(version: RoomVersion, rule: str) -> None:
    room = invite_room(version, invite=10)
    assert_allowed(room.membership_event(BOB, CAROL, "invite"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("2")))
@pytest.mark.parametrize("membership", [None, "invite", "leave", "ban"])
def test_invite_rejected_when_sender_not_joined(
    version: RoomVersion, rule: str, membership: str | None
) -> None:
    room = Room(version)
    if membership:
        room.member(BOB, membership, sender=ALICE)
    assert_rejected(room.membership_event(BOB, CAROL, "invite"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("3")))
@pytest.mark.parametrize("membership", ["join", "ban"])
def test_invite_rejected_when_target_joined_or_banned(
    version: RoomVersion, rule: str, membership: str
) -> None:
    room = invite_room(version)
    room.member(CAROL, membership, sender=ALICE)
    assert_rejected(room.membership_event(BOB, CAROL, "invite"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("4")))
@pytest.mark.parametrize("membership", ["invite", "leave", "knock"])
def test_invite_allowed_when_target_invited_left_or_knocking(
    version: RoomVersion, rule: str, membership: str
) -> None:
    room = invite_room(version)
    room.member(CAROL, membership)
    assert_allowed(room.membership_event(BOB, CAROL, "invite"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("5")))
def test_invite_rejected_below_invite_level(version: RoomVersion, rule: str) -> None:
    room = invite_room(version, invite=11)
    assert_rejected(room.membership_event(BOB, CAROL, "invite"), room.state, rule)


# -- .1: third-party invites --


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.7.1")))
@pytest.mark.parametrize("urlsafe", [False, True])
def test_third_party_invite_allowed_by_signature_of_public_key(
    version: RoomVersion, rule: str, urlsafe: bool
) -> None:
    room = third_party_room(version, public_key=public_key_of(KEY, urlsafe=urlsafe))
    assert_allowed(third_party_invite(room, signed_block(KEY, CAROL, TOKEN)), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.7.2")))
def test_third_party_invite_allowed_by_signature_of_public_keys_entry(
    version: RoomVersion, rule: str
) -> None:
    room = third_party_room(version, public_key=public_key_of(OTHER_KEY), public_keys=[
        {"public_key": public_key_of(OTHER_KEY)}, {"public_key": public_key_of(KEY)}])
    assert_allowed(third_party_invite(room, signed_block(KEY, CAROL, TOKEN)), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.1")))
def test_third_party_invite_rejected_when_target_banned(version: RoomVersion, rule: str) -> None:
    room = third_party_room(version)
    room.member(CAROL, "ban", sender=ALICE)
    assert_rejected(third_party_invite(room, signed_block(KEY, CAROL, TOKEN)), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.2")))
def test_third_party_invite_rejected_without_signed(version: RoomVersion, rule: str) -> None:
    room = third_party_room(version)
    assert_rejected(third_party_invite(room, None), room.state, rule)
    not_an_object = room.membership_event(BOB, CAROL, "invite", third_party_invite="x")
    assert_rejected(not_an_object, room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.3")))
@pytest.mark.parametrize("signed", [{"mxid": CAROL}, {"token": TOKEN}, "signed", []])
def test_third_party_invite_rejected_without_mxid_and_token(
    version: RoomVersion, rule: str, signed: object
) -> None:
    room = third_party_room(version)
    assert_rejected(third_party_invite(room, signed), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.4")))
def test_third_party_invite_rejected_when_mxid_not_state_key(
    version: RoomVersion, rule: str
) -> None:
    room = third_party_room(version)
    event = third_party_invite(room, signed_block(KEY, CAROL, TOKEN), target="@dan:example.org")
    assert_rejected(event, room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.5")))
@pytest.mark.parametrize("token", ["other-token", 7])
def test_third_party_invite_rejected_without_matching_invite_event(
    version: RoomVersion, rule: str, token: object
) -> None:
    room = third_party_room(version)
    signed = {**signed_block(KEY, CAROL, TOKEN), "token": token}
    assert_rejected(third_party_invite(room, signed), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.6")))
def test_third_party_invite_rejected_when_made_by_someone_else(
    version: RoomVersion, rule: str
) -> None:
    room = third_party_room(version)
    room.send("m.room.third_party_invite", ALICE, {"public_key": public_key_of(KEY)}, TOKEN)
    assert_rejected(third_party_invite(room, signed_block(KEY, CAROL, TOKEN)), room.state, rule)


def tampered(signed: dict[str, Any]) -> dict[str, Any]:
    return {**signed, "mxid": CAROL, "extra": "changed after signing"}


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.8")))
@pytest.mark.parametrize("case", [
    "wrong key", "tampered", "no signatures", "bad base64", "other algorithm", "revoked"])
def test_third_party_invite_rejected_when_no_signature_matches(
    version: RoomVersion, rule: str, case: str
) -> None:
    room = third_party_room(version, public_keys=[{"public_key": "not base64!"}])
    signed = signed_block(OTHER_KEY if case == "wrong key" else KEY, CAROL, TOKEN)
    if case == "tampered":
        signed = tampered(signed)
    elif case == "no signatures":
        del signed["signatures"]
    elif case == "bad base64":
        signed["signatures"] = {"id.example.org": {"ed25519:0": "@@@"}}
    elif case == "other algorithm":
        signature = signed["signatures"]["id.example.org"].pop("ed25519:0")
        signed["signatures"]["id.example.org"]["curve25519:0"] = signature
    elif case == "revoked":  # a revoked invite's content is emptied
        room.send("m.room.third_party_invite", BOB, {}, TOKEN)
    assert_rejected(third_party_invite(room, signed), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(numbers("1.7.1")))
def test_third_party_invite_skips_other_rules_of_plain_invites(
    version: RoomVersion, rule: str
) -> None:
    """Once content has third_party_invite, .1.1-.1.8 decide: the invite level is not used."""
    room = third_party_room(version)
    room.power_levels({BOB: 10}, invite=100)
    assert_allowed(third_party_invite(room, signed_block(KEY, CAROL, TOKEN)), room.state, rule)
