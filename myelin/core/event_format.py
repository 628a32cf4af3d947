"""Event format checks: is this dict a well-formed PDU of its room version?

Server-server API, "Checks performed on receipt of a PDU", step 1: an event that does not
comply with its room version's event format is dropped before anything else looks at it.
The formats are data/api/server-server/definitions/pdu_v1, pdu_v3, pdu_v4, pdu_v6, pdu_v11
and pdu_v12 (with their components/), the room versions' "Event IDs" sections, the
client-server API "Size limits", the appendices' identifier grammar, and canonical JSON
strictness from v6 (rooms/fragments/v6-canonical-json.md).

Only the shape is checked here. Whether a v12 ``room_id`` names an accepted create event,
whether signatures verify, or whether ``content`` makes sense for the event type is decided
by signature checks and the authorisation rules, which may assume what this module checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from myelin.core.canonical_json import CanonicalJSONError, encode_canonical_json
from myelin.core.events import compute_event_id
from myelin.core.room_versions import EventIdFormat, RoomVersion
from myelin.ids import is_valid_server_name

__all__ = ["EventFormatError", "room_id_for_create_event", "validate_pdu"]

# Client-server API, "Size limits".
MAX_PDU_BYTES = 65536
MAX_FIELD_BYTES = 255  # sender, room_id, event_id (identifier limits), state_key, type
# pdu_v*.yaml: "Must contain less than or equal to 10 (auth) / 20 (prev) events".
MAX_AUTH_EVENTS = 10
MAX_PREV_EVENTS = 20
# pdu_v1/v3/v4 "depth": "less than the maximum value for an integer (2^63 - 1)" (the limit
# itself is allowed: "the depth must be set to the limit"); depth_v6.yaml: 2^53 - 1.
MAX_DEPTH_BEFORE_V6 = 2**63 - 1
MAX_DEPTH_V6 = 2**53 - 1
_INT64 = (-(2**63), 2**63 - 1)  # pdu_base.yaml: origin_server_ts is an int64

# A reference-hash event ID: "$" + unpadded base64 of 32 bytes = 43 characters, the last one
# carrying only 2 significant bits.
_HASH_ID_BASE64 = re.compile(r"\$[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]")
_HASH_ID_URLSAFE = re.compile(r"\$[A-Za-z0-9\-_]{42}[AEIMQUYcgkosw048]")
# v12 room IDs: the create event's ID with "!" as the sigil (appendices, "Room IDs").
_HASH_ROOM_ID = re.compile(r"![A-Za-z0-9\-_]{42}[AEIMQUYcgkosw048]")


class EventFormatError(ValueError):
    """The event does not have the format its room version requires; it must be dropped."""


class EventTooLargeError(EventFormatError):
    """Over the 65,536-byte limit: clients get 413 M_TOO_LARGE rather than M_BAD_JSON."""


def validate_pdu(event: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Raise ``EventFormatError`` unless ``event`` is a well-formed PDU of ``room_version``."""
    if not isinstance(event, dict):
        raise EventFormatError("a PDU must be a JSON object")
    v = room_version

    # pdu_base.yaml, required: sender, origin_server_ts, type, content, depth, hashes, signatures.
    _check_short_string(event, "type")
    _check_sender(event)
    ts = _require(event, "origin_server_ts", int)
    if not _INT64[0] <= ts <= _INT64[1]:
        raise EventFormatError(f"origin_server_ts: {ts} is outside the int64 range")
    _require(event, "content", dict)
    if "state_key" in event:
        _check_short_string(event, "state_key")
    _check_depth(event, v)
    hashes = _require(event, "hashes", dict)
    if not isinstance(hashes.get("sha256"), str):
        raise EventFormatError("hashes: must have a string 'sha256' (the content hash)")
    _check_signatures(_require(event, "signatures", dict))
    if "unsigned" in event and not isinstance(event["unsigned"], dict):
        raise EventFormatError("unsigned: must be an object")

    _check_event_id(event, v)
    _check_room_id(event, v)
    _check_references(event, "auth_events", MAX_AUTH_EVENTS, v)
    _check_references(event, "prev_events", MAX_PREV_EVENTS, v)
    if not v.redacts_in_content and "redacts" in event and not isinstance(event["redacts"], str):
        raise EventFormatError("redacts: must be an event ID string")

    # Size limits and, from v6, strict canonical JSON: over the complete event, signatures and
    # unsigned included, as sent over federation.
    try:
        size = len(encode_canonical_json(event, strict=v.strict_canonical_json))
    except CanonicalJSONError as e:
        raise EventFormatError(f"the event is not valid canonical JSON: {e}") from None
    if size > MAX_PDU_BYTES:
        raise EventTooLargeError(
            f"the event is {size} bytes of canonical JSON, over {MAX_PDU_BYTES}"
        )


def room_id_for_create_event(create: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The room ID a create event founds.

    Room version 12 ("Event format", appendices "Room IDs"): the create event carries no
    ``room_id``; the room ID is its event ID (its reference hash, URL-safe base64) with ``!``
    as the sigil. Earlier versions simply carry the room ID in the create event.
    """
    if room_version.room_id_from_create_event:
        return "!" + compute_event_id(create, room_version)[1:]
    room_id = create.get("room_id")
    if not isinstance(room_id, str):
        raise EventFormatError("room_id: the create event of this room version must carry it")
    return room_id


# -- field checks --


def _require(event: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in event:
        raise EventFormatError(f"{key}: required field is missing")
    value = event[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EventFormatError(f"{key}: must be {_KIND_NAMES[kind]}, got {_show(value)}")
    return value


_KIND_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    dict: "an object",
    list: "an array",
}


def _check_short_string(event: Mapping[str, Any], key: str) -> str:
    value: str = _require(event, key, str)
    # A code point is at most 4 UTF-8 bytes: only long strings need encoding to be measured.
    if len(value) * 4 > MAX_FIELD_BYTES and _utf8_length(value) > MAX_FIELD_BYTES:
        raise EventFormatError(f"{key}: longer than {MAX_FIELD_BYTES} bytes")
    return value


def _check_sender(event: Mapping[str, Any]) -> None:
    """Appendices, "User Identifiers" and "Historical User IDs": peers' events may carry any
    localpart except ':' and NUL (even an empty one); the domain must be a server name."""
    sender = _check_short_string(event, "sender")
    localpart, colon, domain = sender[1:].partition(":")
    if not sender.startswith("@") or not colon or "\x00" in localpart:
        raise EventFormatError(
            f"sender: must be a user ID (@localpart:server), got {_show(sender)}"
        )
    if not is_valid_server_name(domain):
        raise EventFormatError(f"sender: {_show(domain)} is not a valid server name")


def _check_depth(event: Mapping[str, Any], v: RoomVersion) -> None:
    depth = _require(event, "depth", int)
    limit = MAX_DEPTH_V6 if v.strict_canonical_json else MAX_DEPTH_BEFORE_V6
    if not 0 <= depth <= limit:
        raise EventFormatError(f"depth: {depth} is outside [0, {limit}]")


def _check_signatures(signatures: Mapping[str, Any]) -> None:
    for server, by_key in signatures.items():
        if not isinstance(by_key, dict) or not all(isinstance(s, str) for s in by_key.values()):
            raise EventFormatError(
                f"signatures: {_show(server)} must map key IDs to signature strings"
            )


def _check_event_id(event: Mapping[str, Any], v: RoomVersion) -> None:
    if v.event_id_format is EventIdFormat.SERVER_GENERATED:  # v1-v2: "$opaque_id:domain"
        event_id = _check_short_string(event, "event_id")
        if not _is_v1_event_id(event_id):
            raise EventFormatError(
                f"event_id: must look like $opaque_id:server, got {_show(event_id)}"
            )
    elif "event_id" in event:  # v3+: the ID is the reference hash, never carried
        raise EventFormatError(
            f"event_id: not part of room version {v.identifier} events (the event ID is the "
            "event's reference hash)"
        )


def _is_v1_event_id(event_id: str) -> bool:
    _opaque, colon, domain = event_id[1:].partition(":")
    return event_id.startswith("$") and bool(colon) and is_valid_server_name(domain)


def _is_v1_reference_id(value: Any) -> bool:
    return (
        isinstance(value, str) and _utf8_length(value) <= MAX_FIELD_BYTES and _is_v1_event_id(value)
    )


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _check_room_id(event: Mapping[str, Any], v: RoomVersion) -> None:
    if v.room_id_from_create_event:
        if event.get("type") == "m.room.create":
            if "room_id" in event:
                raise EventFormatError(
                    "room_id: an m.room.create event of this room version has none (the room "
                    "ID is derived from the event)"
                )
            return
        room_id = _check_short_string(event, "room_id")
        if _HASH_ROOM_ID.fullmatch(room_id) is None:
            raise EventFormatError(
                "room_id: must be '!' + the create event's reference hash (URL-safe unpadded "
                f"base64), got {_show(room_id)}"
            )
        return
    room_id = _check_short_string(event, "room_id")  # "!opaque_id:domain"
    localpart, colon, domain = room_id[1:].partition(":")
    if not room_id.startswith("!") or not colon or "\x00" in localpart:
        raise EventFormatError(f"room_id: must look like !opaque_id:server, got {_show(room_id)}")
    if not is_valid_server_name(domain):
        raise EventFormatError(f"room_id: {_show(domain)} is not a valid server name")


def _check_references(event: Mapping[str, Any], key: str, limit: int, v: RoomVersion) -> None:
    """pdu_v1 (v1-v2): [event_id, {"sha256": hash}] pairs; pdu_v3 and later: event IDs."""
    refs: list[Any] = _require(event, key, list)
    if len(refs) > limit:
        raise EventFormatError(f"{key}: {len(refs)} entries, at most {limit} are allowed")
    if v.event_id_format is EventIdFormat.SERVER_GENERATED:
        for ref in refs:
            if not (
                isinstance(ref, list)
                and len(ref) == 2
                and _is_v1_reference_id(ref[0])
                and isinstance(ref[1], dict)
                and isinstance(ref[1].get("sha256"), str)
            ):
                raise EventFormatError(
                    f"{key}: must hold [event_id, {{sha256: hash}}] pairs, got {_show(ref)}"
                )
        return
    pattern = (
        _HASH_ID_URLSAFE
        if v.event_id_format is EventIdFormat.REFERENCE_HASH_URLSAFE
        else _HASH_ID_BASE64
    )
    for ref in refs:
        if type(ref) is not str or pattern.fullmatch(ref) is None:
            raise EventFormatError(
                f"{key}: must hold event IDs of room version {v.identifier}, got {_show(ref)}"
            )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
