"""Redactions: rule 11 of v1-v2, and "Handling redactions" from v3 (the redact level is not
an auth rule any more)."""

from __future__ import annotations

import pytest

from myelin.core.auth import redaction_applies
from myelin.core.events import PDU
from myelin.core.room_versions import RoomVersion

from auth_scenarios import (
    ALICE,
    BOB,
    EVE,
    FINAL_ALLOW,
    Room,
    absent_in,
    assert_allowed,
    assert_rejected,
    each_version,
    number_in,
    rule_cases,
)


def redaction_room(version: RoomVersion) -> Room:
    """BOB (10) and EVE (0, another server) are members; the redact level is 50."""
    room = Room(version)
    room.power_levels({BOB: 10}, redact=50)
    room.member(BOB, "join")
    room.member(EVE, "join")
    return room


def redaction(room: Room, sender: str, redacts: str, event_id: str | None = None) -> PDU:
    if room.version.redacts_in_content:
        return room.event("m.room.redaction", sender, {"redacts": redacts}, event_id=event_id)
    return room.event("m.room.redaction", sender, {}, redacts=redacts, event_id=event_id)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-2": "11.1"}))
def test_redaction_allowed_at_redact_level(version: RoomVersion, rule: str) -> None:
    room = redaction_room(version)
    assert_allowed(redaction(room, ALICE, "$msg:elsewhere.example"), room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-2": "11.2"}))
def test_redaction_allowed_for_event_ids_of_the_same_domain(
    version: RoomVersion, rule: str
) -> None:
    room = redaction_room(version)
    event = redaction(room, EVE, "$msg:elsewhere.example", event_id="$r:elsewhere.example")
    assert_allowed(event, room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-2": "11.3"}))
@pytest.mark.parametrize("redacts", ["$msg:example.org", "$no-domain", None])
def test_redaction_rejected_below_redact_level_for_other_domain(
    version: RoomVersion, rule: str, redacts: str | None
) -> None:
    room = redaction_room(version)
    if redacts is None:
        event = room.event("m.room.redaction", EVE, {}, event_id="$r:elsewhere.example")
    else:
        event = redaction(room, EVE, redacts, event_id="$r:elsewhere.example")
    assert_rejected(event, room.state, rule)


@pytest.mark.parametrize("version", absent_in("3-12"))
def test_redaction_is_an_ordinary_event_from_v3(version: RoomVersion) -> None:
    room = redaction_room(version)
    event = redaction(room, EVE, "$msg:example.org", event_id="$r:elsewhere.example")
    assert_allowed(event, room.state, number_in(FINAL_ALLOW, version))


@pytest.mark.parametrize("version", each_version("3-12"))
def test_handling_redactions_applies_at_redact_level_or_same_sender_domain(
    version: RoomVersion,
) -> None:
    room = redaction_room(version)
    by_bob = room.event("m.room.message", BOB, {"body": "hi"})
    by_eve = room.event("m.room.message", EVE, {"body": "hi"})
    # 1. "The power level of the redaction event's sender is greater than or equal to the
    #    redact level."
    assert redaction_applies(redaction(room, ALICE, by_eve.event_id), by_eve, room.state)
    # 2. "The domain of the redaction event's sender matches that of the original event's
    #    sender." (BOB and ALICE share example.org)
    assert redaction_applies(redaction(room, BOB, by_bob.event_id), by_bob, room.state)
    room.power_levels({BOB: 10}, redact=200)
    assert redaction_applies(redaction(room, BOB, by_bob.event_id), by_bob, room.state)
    # Neither: BOB at 10 redacting EVE's event.
    assert not redaction_applies(redaction(room, BOB, by_eve.event_id), by_eve, room.state)
    # A redaction never applies to an event it does not name.
    assert not redaction_applies(redaction(room, ALICE, "$other"), by_eve, room.state)


@pytest.mark.parametrize("version", each_version("1-2"))
def test_v1_accepted_redactions_apply(version: RoomVersion) -> None:
    room = redaction_room(version)
    by_eve = room.event("m.room.message", EVE, {"body": "hi"})
    assert redaction_applies(redaction(room, BOB, by_eve.event_id), by_eve, room.state)
