"""Rule 1 (m.room.create), v12 rule 2 (the room ID is the create event's) and rule 3
(m.federate; rule 4 in v12)."""

from __future__ import annotations

import pytest

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
    create_event,
    each_version,
    number_in,
    rule_cases,
    versions,
)

ALLOW = {"1-10": "1.5", "11": "1.4", "12": "1.5"}


def creation_content(version: RoomVersion, **extra: object) -> dict[str, object]:
    content: dict[str, object] = {"room_version": version.identifier}
    if not version.implicit_room_creator:
        content["creator"] = ALICE
    return {**content, **extra}


@pytest.mark.parametrize(("version", "rule"), rule_cases(ALLOW))
def test_create_allowed_when_well_formed(version: RoomVersion, rule: str) -> None:
    assert_allowed(create_event(version, ALICE, creation_content(version)), {}, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-12": "1.1"}))
def test_create_rejected_when_it_has_prev_events(version: RoomVersion, rule: str) -> None:
    event = create_event(version, ALICE, creation_content(version), prev_events=["$x:a.org"])
    assert_rejected(event, {}, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-11": "1.2"}))
def test_create_rejected_when_room_id_domain_is_not_senders(
    version: RoomVersion, rule: str
) -> None:
    event = create_event(version, ALICE, creation_content(version), room_id="!room:other.org")
    assert_rejected(event, {}, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"12": "1.2"}))
def test_create_rejected_when_it_has_a_room_id(version: RoomVersion, rule: str) -> None:
    event = create_event(version, ALICE, creation_content(version), room_id="!room:example.org")
    assert_rejected(event, {}, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-12": "1.3"}))
@pytest.mark.parametrize("room_version", ["999", 5, None, "v1"])
def test_create_rejected_when_room_version_unknown(
    version: RoomVersion, rule: str, room_version: object
) -> None:
    event = create_event(version, ALICE, creation_content(version, room_version=room_version))
    assert_rejected(event, {}, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases(ALLOW))
def test_create_allowed_without_room_version(version: RoomVersion, rule: str) -> None:
    content = creation_content(version)
    del content["room_version"]
    assert_allowed(create_event(version, ALICE, content), {}, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-10": "1.4"}))
def test_create_rejected_without_creator(version: RoomVersion, rule: str) -> None:
    assert_rejected(create_event(version, ALICE, {"room_version": version.identifier}), {}, rule)


@pytest.mark.parametrize("version", absent_in("11-12"))
def test_v11_create_allowed_without_creator(version: RoomVersion) -> None:
    event = create_event(version, ALICE, {"room_version": version.identifier})
    assert_allowed(event, {}, number_in(ALLOW, version))


@pytest.mark.parametrize(("version", "rule"), rule_cases({"12": "1.4"}))
@pytest.mark.parametrize(
    "additional",
    ["@bob:example.org", [1], ["bob"], ["@bob"], ["@bob:bad_host!"], [None], {"@bob:x.org": 1}],
)
def test_create_rejected_when_additional_creators_invalid(
    version: RoomVersion, rule: str, additional: object
) -> None:
    event = create_event(version, ALICE, creation_content(version, additional_creators=additional))
    assert_rejected(event, {}, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"12": "1.5"}))
@pytest.mark.parametrize("additional", [[], [BOB, EVE], ["@historical\u00e9:example.org:8448"]])
def test_create_allowed_when_additional_creators_are_user_ids(
    version: RoomVersion, rule: str, additional: list[str]
) -> None:
    event = create_event(version, ALICE, creation_content(version, additional_creators=additional))
    assert_allowed(event, {}, rule)


@pytest.mark.parametrize("version", absent_in("1-11"))
def test_additional_creators_not_validated_before_v12(version: RoomVersion) -> None:
    event = create_event(version, ALICE, creation_content(version, additional_creators=[1]))
    assert_allowed(event, {}, number_in(ALLOW, version))


# -- v12 rule 2: "If the event's room_id is not an event ID for an accepted m.room.create
# event, with the sigil ! instead of $, reject." --


@pytest.mark.parametrize(("version", "rule"), rule_cases({"12": "2"}))
def test_event_rejected_when_room_id_is_not_the_create_events(
    version: RoomVersion, rule: str
) -> None:
    room = Room(version)
    event = room.event("m.room.message", ALICE, {"body": "hi"}, room_id="!other")
    assert_rejected(event, room.state, rule)


@pytest.mark.parametrize(("version", "rule"), rule_cases({"12": "2"}))
def test_event_rejected_when_create_event_missing_from_auth_state(
    version: RoomVersion, rule: str
) -> None:
    room = Room(version)
    del room.state[("m.room.create", "")]
    assert_rejected(room.event("m.room.message", ALICE, {"body": "hi"}), room.state, rule)


@pytest.mark.parametrize("version", each_version())
def test_room_id_of_v12_rooms_is_the_create_event_id(version: RoomVersion) -> None:
    room = Room(version)
    expected = "!create" if version.room_id_from_create_event else "!room:example.org"
    assert room.room_id == expected == room.event("m.room.message", ALICE, {}).room_id


@pytest.mark.parametrize("version", absent_in("1-11"))
def test_room_id_not_tied_to_create_event_before_v12(version: RoomVersion) -> None:
    room = Room(version)
    event = room.event("m.room.message", ALICE, {"body": "hi"}, room_id="!other:example.org")
    assert_allowed(event, room.state, number_in(FINAL_ALLOW, version))


# -- rule 3 (4 in v12): m.federate --


@pytest.mark.parametrize(("version", "rule"), rule_cases({"1-11": "3", "12": "4"}))
def test_event_rejected_when_room_does_not_federate_with_sender(
    version: RoomVersion, rule: str
) -> None:
    room = Room(version, create_content={"m.federate": False})
    room.join_rule("public")
    assert_rejected(room.membership_event(EVE, EVE, "join"), room.state, rule)


@pytest.mark.parametrize(
    ("version", "rule"),
    rule_cases({"1-5": "5.2.5", "6-7": "4.2.5", "8-11": "4.3.6", "12": "5.3.6"}),
)
@pytest.mark.parametrize(("federate", "user"), [(False, BOB), (True, EVE), ("false", EVE)])
def test_event_allowed_when_federation_allowed_or_same_server(
    version: RoomVersion, rule: str, federate: object, user: str
) -> None:
    """Rule 3 only rejects when m.federate is false itself and the servers differ."""
    room = Room(version, create_content={"m.federate": federate})
    room.join_rule("public")
    assert_allowed(room.membership_event(user, user, "join"), room.state, rule)


def test_versions_helper() -> None:
    assert [v.identifier for v in versions("10-12")] == ["10", "11", "12"]
