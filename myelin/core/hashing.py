"""Event hashes: the content hash (``hashes.sha256``) and the reference hash (v3+ event IDs).

Server-server API, "Signing Events": "Calculating the content hash for an event" and
"Calculating the reference hash for an event". The content hash covers the whole unredacted
event, so a server holding a signed but redacted copy can tell it was redacted; the reference
hash covers the redacted event, so it survives redaction and can name the event.

Strictness: these functions hash events *as received*. With ``strict=False`` (the default)
canonical JSON encodes the pre-v6 leniencies (floats, big integers) the way their senders did,
and for every strictly valid event the bytes are identical to strict mode. Enforcing v6+
strictness is the job of ``event_format.validate_pdu`` on receipt and of ``sign_event`` on
send, so hashing never rejects an event that was already accepted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

# A module object, not names: signing imports this module too (see signing.py).
from myelin.core import signing as _signing
from myelin.core.canonical_json import encode_canonical_json
from myelin.core.redaction import redact_for_signing
from myelin.core.room_versions import EventIdFormat, RoomVersion

__all__ = [
    "add_content_hash",
    "check_content_hash",
    "compute_content_hash",
    "event_id_from_reference_hash",
    "reference_hash",
]

# "Calculating the content hash": these are removed before hashing.
_NOT_IN_CONTENT_HASH = frozenset({"unsigned", "signatures", "hashes"})


def compute_content_hash(event: Mapping[str, Any], *, strict: bool = False) -> bytes:
    """SHA-256 of the canonical JSON of ``event`` without unsigned, signatures and hashes.

    Server-server API, "Calculating the content hash for an event".
    """
    stripped = {key: value for key, value in event.items() if key not in _NOT_IN_CONTENT_HASH}
    return hashlib.sha256(encode_canonical_json(stripped, strict=strict)).digest()


def add_content_hash(event: Mapping[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """A copy of ``event`` with ``hashes.sha256`` set to its content hash (unpadded base64).

    Server-server API, "Adding hashes and signatures to outgoing events", first step. Other
    algorithms already in ``hashes`` are kept (the hash excludes ``hashes`` itself).
    """
    digest = compute_content_hash(event, strict=strict)
    out = dict(event)
    hashes = event.get("hashes")
    out["hashes"] = {
        **(hashes if isinstance(hashes, dict) else {}),
        "sha256": _signing.encode_base64(digest),
    }
    return out


def check_content_hash(event: Mapping[str, Any]) -> bool:
    """True if ``hashes.sha256`` decodes to the event's content hash.

    Server-server API, "Validating hashes and signatures on received events": on failure the
    receiver must use the redacted copy of the event, not drop it; a missing or undecodable
    hash is simply a failed check.
    """
    hashes = event.get("hashes")
    if not isinstance(hashes, dict):
        return False
    claimed = hashes.get("sha256")
    if not isinstance(claimed, str):
        return False
    try:
        expected = _signing.decode_base64(claimed)
    except ValueError:
        return False
    return expected == compute_content_hash(event)


def reference_hash(event: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """SHA-256 of the canonical JSON of the redacted event without signatures and unsigned.

    Server-server API, "Calculating the reference hash for an event". These are also exactly
    the bytes the event's signatures cover, which is why the event ID of a signed event does
    not change when other servers add their signatures.
    """
    signed_part = redact_for_signing(event, room_version)
    return hashlib.sha256(encode_canonical_json(signed_part, strict=False)).digest()


def event_id_from_reference_hash(digest: bytes, room_version: RoomVersion) -> str:
    """The event ID a reference hash gives: "$" + unpadded base64 of it.

    Room version 3, "Event IDs": standard alphabet; rooms/fragments/v4-event-ids.md (v4 and
    later): URL-safe alphabet. Room versions 1 and 2 carry server-generated event IDs instead.
    """
    if room_version.event_id_format is EventIdFormat.SERVER_GENERATED:
        raise ValueError(f"room version {room_version.identifier} event IDs are not hashes")
    urlsafe = room_version.event_id_format is EventIdFormat.REFERENCE_HASH_URLSAFE
    return "$" + _signing.encode_base64(digest, urlsafe=urlsafe)
