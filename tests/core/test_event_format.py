"""PDU format checks per room version (data/api/server-server/definitions/pdu_v*.yaml, the room
versions' event ID formats, client-server API "Size limits", v6+ strict canonical JSON)."""

from __future__ import annotations

from typing import Any

import pytest

from myelin.core.canonical_json import encode_canonical_json
from myelin.core.event_format import (
    MAX_PDU_BYTES,
    EventFormatError,
    room_id_for_create_event,
    validate_pdu,
)
from myelin.core.events import PDU, compute_event_id
from myelin.core.room_versions import (
    KNOWN_ROOM_VERSIONS,
    V1,
    V2,
    V3,
    V4,
    V5,
    V6,
    V10,
    V11,
    V12,
    RoomVersion,
)

ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS.values())
HASH_ID_STD = "$RrGxF28UrHLmoASHndYb9Jb/1SFww2ptmtur9INS438"  # room version 3 format
HASH_ID_URLSAFE = "$RrGxF28UrHLmoASHndYb9Jb_1SFww2ptmtur9INS438"  # room version 4+ format
V12_ROOM_ID = "!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ"


def ids(v: RoomVersion) -> str:
    return f"v{v.identifier}"


def valid_pdu(v: RoomVersion, **changes: Any) -> dict[str, Any]:
    """A well-formed m.room.message PDU of room version ``v``."""
    if v.identifier in ("1", "2"):
        refs: list[Any] = [["$abc:example.org", {"sha256": "x" * 43}]]
    elif v.identifier == "3":
        refs = [HASH_ID_STD]
    else:
        refs = [HASH_ID_URLSAFE]
    event: dict[str, Any] = {
        "type": "m.room.message",
        "sender": "@alice:example.org",
        "origin_server_ts": 1_700_000_000_000,
        "content": {"msgtype": "m.text", "body": "hi"},
        "depth": 5,
        "hashes": {"sha256": "thishashcoversallfieldsincasethisisredacted"},
        "signatures": {"example.org": {"ed25519:1": "sig"}},
        "auth_events": list(refs),
        "prev_events": list(refs),
        "room_id": V12_ROOM_ID if v.room_id_from_create_event else "!room:example.org",
        "unsigned": {"age": 4612},
    }
    if v.identifier in ("1", "2"):
        event["event_id"] = "$a4ecee13e2accdadf56c1025:example.com"
    event.update(changes)
    return event


def rejected(event: dict[str, Any], v: RoomVersion, match: str) -> None:
    with pytest.raises(EventFormatError, match=match):
        validate_pdu(event, v)


@pytest.mark.parametrize("v", ALL_VERSIONS, ids=ids)
def test_a_valid_pdu_passes(v: RoomVersion) -> None:
    validate_pdu(valid_pdu(v), v)
    validate_pdu(valid_pdu(v, state_key="", type="m.room.topic", content={"topic": "t"}), v)


def test_event_format_error_is_a_value_error() -> None:
    assert issubclass(EventFormatError, ValueError)
    rejected([], V12, "JSON object")  # type: ignore[arg-type]


# -- required fields (pdu_base.yaml and the per-version schemas) --

BASE_REQUIRED = ["sender", "origin_server_ts", "type", "content", "depth", "hashes", "signatures"]


@pytest.mark.parametrize("v", ALL_VERSIONS, ids=ids)
@pytest.mark.parametrize("field", [*BASE_REQUIRED, "auth_events", "prev_events", "room_id"])
def test_required_fields(v: RoomVersion, field: str) -> None:
    event = valid_pdu(v)
    del event[field]
    rejected(event, v, f"{field}: required field is missing")


@pytest.mark.parametrize("v", [V1, V2], ids=ids)
def test_v1_v2_require_an_event_id_of_the_form_opaque_colon_server(v: RoomVersion) -> None:
    event = valid_pdu(v)
    del event["event_id"]
    rejected(event, v, "event_id: required")
    for bad in ["abc:example.org", "$abc", "$abc:", "$abc:bad server", 5]:
        rejected(valid_pdu(v, event_id=bad), v, "event_id")
    validate_pdu(valid_pdu(v, event_id="$opaque:[::1]:8448"), v)


@pytest.mark.parametrize("v", ALL_VERSIONS[2:], ids=ids)
def test_v3_and_later_events_carry_no_event_id(v: RoomVersion) -> None:
    rejected(valid_pdu(v, event_id=HASH_ID_URLSAFE), v, "event_id: not part of room version")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", 5),
        ("sender", None),
        ("origin_server_ts", "1"),
        ("origin_server_ts", 1.0),
        ("origin_server_ts", True),
        ("origin_server_ts", 2**63),
        ("content", []),
        ("depth", "5"),
        ("depth", False),
        ("hashes", "abc"),
        ("hashes", {}),
        ("hashes", {"sha256": 5}),
        ("signatures", []),
        ("signatures", {"example.org": "sig"}),
        ("signatures", {"example.org": {"ed25519:1": 5}}),
        ("state_key", None),
        ("unsigned", []),
        ("auth_events", {}),
        ("prev_events", "$x"),
        ("room_id", 5),
    ],
)
@pytest.mark.parametrize("v", [V1, V4, V10, V12], ids=ids)
def test_field_types(v: RoomVersion, field: str, value: Any) -> None:
    rejected(valid_pdu(v, **{field: value}), v, field)


# -- size limits (client-server API, "Size limits") --


@pytest.mark.parametrize("v", [V1, V6, V12], ids=ids)
def test_whole_event_limit_is_65536_bytes_of_canonical_json(v: RoomVersion) -> None:
    event = valid_pdu(v, content={"body": ""})
    padding = MAX_PDU_BYTES - len(encode_canonical_json(event))
    event["content"]["body"] = "é" * (padding // 2) + "x" * (padding % 2)  # bytes, not chars
    assert len(encode_canonical_json(event)) == MAX_PDU_BYTES
    validate_pdu(event, v)
    event["signatures"]["example.org"]["ed25519:2"] = "x"  # signatures count towards the limit
    rejected(event, v, "over 65536")


@pytest.mark.parametrize("v", [V1, V12], ids=ids)
@pytest.mark.parametrize("field", ["type", "state_key"])
def test_type_and_state_key_are_limited_to_255_bytes(v: RoomVersion, field: str) -> None:
    validate_pdu(valid_pdu(v, **{field: "x" * 255}), v)
    rejected(valid_pdu(v, **{field: "x" * 256}), v, f"{field}: longer than 255 bytes")
    rejected(valid_pdu(v, **{field: "é" * 128}), v, f"{field}: longer than 255 bytes")


@pytest.mark.parametrize("v", [V1, V12], ids=ids)
def test_sender_is_limited_to_255_bytes(v: RoomVersion) -> None:
    domain = ":example.org"
    validate_pdu(valid_pdu(v, sender="@" + "a" * (254 - len(domain)) + domain), v)
    rejected(valid_pdu(v, sender="@" + "a" * (255 - len(domain)) + domain), v, "sender: longer")


def test_room_id_and_event_id_are_limited_to_255_bytes() -> None:
    validate_pdu(valid_pdu(V1, room_id="!" + "r" * 242 + ":example.org"), V1)
    rejected(valid_pdu(V1, room_id="!" + "r" * 243 + ":example.org"), V1, "room_id: longer")
    rejected(valid_pdu(V1, event_id="$" + "e" * 243 + ":example.org"), V1, "event_id: longer")


# -- identifiers --


@pytest.mark.parametrize(
    "sender",
    ["@alice:example.org", "@Ünïcode:example.org", "@:example.org", "@a b!\x01:example.org",
     "@bob:[::1]:8448", "@bob:1.2.3.4"],
)  # fmt: skip
def test_historical_user_ids_are_accepted(sender: str) -> None:
    # Appendices, "Historical User IDs": any code points but ':' and NUL, even an empty one.
    validate_pdu(valid_pdu(V12, sender=sender), V12)


@pytest.mark.parametrize(
    "sender", ["alice:example.org", "@alice", "@alice:", "@alice:bad_server", "@a\x00b:example.org"]
)
def test_malformed_senders_are_rejected(sender: str) -> None:
    rejected(valid_pdu(V12, sender=sender), V12, "sender")


@pytest.mark.parametrize("v", ALL_VERSIONS[:-1], ids=ids)
def test_room_ids_before_v12_are_opaque_colon_server(v: RoomVersion) -> None:
    validate_pdu(valid_pdu(v, room_id="!a:[::1]:8448"), v)
    for bad in [
        "room:example.org",
        "!room",
        "!room:bad server",
        "!a\x00b:example.org",
        V12_ROOM_ID,
    ]:
        rejected(valid_pdu(v, room_id=bad), v, "room_id")


def test_v12_room_ids_are_create_event_hashes() -> None:
    for bad in ["!room:example.org", V12_ROOM_ID[:-1], V12_ROOM_ID + "A", "!" + HASH_ID_STD[1:]]:
        rejected(valid_pdu(V12, room_id=bad), V12, "room_id: must be '!' \\+ the create event")
    # The last character of 32 bytes in base64 only carries 4 bits.
    rejected(valid_pdu(V12, room_id=V12_ROOM_ID[:-1] + "B"), V12, "room_id")


def test_v12_create_event_has_no_room_id() -> None:
    create = valid_pdu(V12, type="m.room.create", state_key="", content={"room_version": "12"})
    create["auth_events"] = create["prev_events"] = []
    rejected(create, V12, "room_id: an m.room.create event of this room version has none")
    del create["room_id"]
    validate_pdu(create, V12)
    # v11 create events still carry theirs.
    v11_create = {**create, "room_id": "!r:example.org"}
    validate_pdu(v11_create, V11)
    del v11_create["room_id"]
    rejected(v11_create, V11, "room_id: required")


# -- auth_events / prev_events --


@pytest.mark.parametrize("v", [V1, V2], ids=ids)
def test_v1_v2_references_are_event_id_hash_pairs(v: RoomVersion) -> None:
    for bad in [
        "$abc:example.org",
        ["$abc:example.org"],
        ["$abc:example.org", {"sha256": "x"}, "extra"],
        ["$abc:example.org", {}],
        ["$abc:example.org", "hash"],
        [HASH_ID_STD, {"sha256": "x"}],
    ]:
        rejected(valid_pdu(v, prev_events=[bad]), v, "prev_events: must hold")


def test_v3_references_use_the_standard_alphabet() -> None:
    validate_pdu(valid_pdu(V3, auth_events=[HASH_ID_STD]), V3)
    rejected(valid_pdu(V3, auth_events=[HASH_ID_URLSAFE]), V3, "auth_events: must hold")


@pytest.mark.parametrize("v", ALL_VERSIONS[3:], ids=ids)
def test_v4_and_later_references_use_the_url_safe_alphabet(v: RoomVersion) -> None:
    for bad in [HASH_ID_STD, "$abc:example.org", HASH_ID_URLSAFE[:-1], 5, ["$x", {}]]:
        rejected(valid_pdu(v, prev_events=[bad]), v, "prev_events: must hold")


@pytest.mark.parametrize("v", [V1, V5, V12], ids=ids)
def test_at_most_10_auth_events_and_20_prev_events(v: RoomVersion) -> None:
    ref = valid_pdu(v)["prev_events"][0]
    validate_pdu(valid_pdu(v, auth_events=[ref] * 10, prev_events=[ref] * 20), v)
    rejected(valid_pdu(v, auth_events=[ref] * 11), v, "auth_events: 11 entries, at most 10")
    rejected(valid_pdu(v, prev_events=[ref] * 21), v, "prev_events: 21 entries, at most 20")


# -- numbers: depth and canonical JSON strictness --


@pytest.mark.parametrize("v", ALL_VERSIONS[:5], ids=ids)
def test_depth_before_v6_goes_up_to_2_63_minus_1(v: RoomVersion) -> None:
    validate_pdu(valid_pdu(v, depth=0), v)
    validate_pdu(valid_pdu(v, depth=2**63 - 1), v)
    rejected(valid_pdu(v, depth=2**63), v, "depth")
    rejected(valid_pdu(v, depth=-1), v, "depth")


@pytest.mark.parametrize("v", ALL_VERSIONS[5:], ids=ids)
def test_depth_from_v6_goes_up_to_2_53_minus_1(v: RoomVersion) -> None:
    validate_pdu(valid_pdu(v, depth=2**53 - 1), v)
    rejected(valid_pdu(v, depth=2**53), v, "depth")


@pytest.mark.parametrize("v", ALL_VERSIONS[:5], ids=ids)
def test_before_v6_non_canonical_numbers_are_tolerated(v: RoomVersion) -> None:
    content = {"users": {"@bob:localhost": 50.57}, "big": 2**60}  # v1-floaty-power-levels.md
    validate_pdu(valid_pdu(v, type="m.room.power_levels", state_key="", content=content), v)


@pytest.mark.parametrize("v", ALL_VERSIONS[5:], ids=ids)
def test_from_v6_canonical_json_is_enforced_everywhere(v: RoomVersion) -> None:
    rejected(valid_pdu(v, content={"pl": 50.57}), v, "not valid canonical JSON: float")
    rejected(valid_pdu(v, content={"n": [2**53]}), v, "canonical JSON: integer")
    rejected(valid_pdu(v, unsigned={"age": 1.5}), v, "canonical JSON")
    rejected(valid_pdu(v, origin_server_ts=2**53), v, "canonical JSON")


def test_redacts_must_be_a_string_where_it_is_a_top_level_field() -> None:
    rejected(valid_pdu(V10, type="m.room.redaction", redacts=5), V10, "redacts")
    validate_pdu(valid_pdu(V10, type="m.room.redaction", redacts=HASH_ID_URLSAFE), V10)
    validate_pdu(valid_pdu(V11, type="m.room.redaction", redacts=5), V11)  # not in pdu_v11


# -- room IDs from create events (room version 12) --


def _v12_create() -> dict[str, Any]:
    return {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@alice:example.org",
        "origin_server_ts": 1_700_000_000_000,
        "content": {"room_version": "12"},
        "depth": 1,
        "hashes": {"sha256": "x" * 43},
        "signatures": {},
        "auth_events": [],
        "prev_events": [],
    }


def test_room_id_for_create_event_v12() -> None:
    create = _v12_create()
    room_id = room_id_for_create_event(create, V12)
    assert room_id == "!" + compute_event_id(create, V12)[1:]
    assert room_id == PDU(create, V12).room_id
    validate_pdu(valid_pdu(V12, room_id=room_id), V12)


def test_room_id_for_create_event_before_v12_is_carried() -> None:
    create = {**_v12_create(), "room_id": "!r:example.org"}
    assert room_id_for_create_event(create, V11) == "!r:example.org"
    with pytest.raises(EventFormatError):
        room_id_for_create_event(_v12_create(), V11)
