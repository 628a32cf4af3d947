"""Signing JSON objects and events with ed25519, and checking those signatures.

Appendices, "Unpadded Base64", "Signing Details" and "Checking for a Signature"; server-server
API, "Adding hashes and signatures to outgoing events" and "Validating hashes and signatures on
received events". Everything is pure: keys are passed in, and finding the right verify key for
a server (and whether it was valid at the event's ``origin_server_ts``, v5+) is the caller's
business.

Strictness of canonical JSON: we sign strictly by default (what we produce must be canonical)
and verify leniently by default, because signed objects legitimately carry events of room
versions 1-5 (X-Matrix request bodies, invite room state) whose numbers need not be canonical.
Events themselves follow their room version (see ``sign_event``).
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

import nacl.exceptions
import nacl.signing

# hashing and signing use each other (content hashes are base64; signing an event adds its
# content hash), so each imports the other as a module object, resolved at call time: that
# works whichever of the two is imported first.
from myelin.core import hashing as _hashing
from myelin.core.canonical_json import CanonicalJSONError, encode_canonical_json
from myelin.core.redaction import redact_for_signing
from myelin.core.room_versions import EventIdFormat, RoomVersion

__all__ = [
    "SignatureError",
    "add_event_signature",
    "decode_base64",
    "encode_base64",
    "sign_event",
    "sign_event_with_id",
    "sign_json",
    "verify_event_signature",
    "verify_json",
]

ED25519 = "ed25519"
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")


class SignatureError(ValueError):
    """The object does not carry a valid signature from the given server and key."""


# -- base64 (appendices, "Unpadded Base64", "URL-safe unpadded Base64") --


def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    """Unpadded base64, standard alphabet or (``urlsafe``) RFC 4648 section 5 alphabet."""
    encoded = binascii.b2a_base64(data, newline=False).rstrip(b"=")
    if urlsafe:
        encoded = encoded.translate(_TO_URLSAFE)
    return encoded.decode("ascii")


def decode_base64(text: str) -> bytes:
    """Decode padded or unpadded, standard or URL-safe base64; raises ``ValueError`` if invalid.

    The appendix asks decoders to "accept input with or without padding characters wherever
    possible, to ensure maximum interoperability".
    """
    text = text.strip().rstrip("=")
    if "-" in text or "_" in text:
        text = text.translate(_FROM_URLSAFE)
    # strict_mode: only alphabet characters and correct padding (which we just made correct);
    # ~7x faster than base64.b64decode(validate=True), which checks with a regex first.
    return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)


# -- JSON objects (appendices, "Signing Details", "Checking for a Signature") --


def sign_json(
    obj: Mapping[str, Any],
    server_name: str,
    signing_key: nacl.signing.SigningKey,
    key_id: str,
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """A copy of ``obj`` with ``signatures[server_name][key_id]`` added; others are kept.

    The signature covers the canonical JSON of ``obj`` without ``signatures`` and ``unsigned``.
    ``strict=False`` is for objects that carry pre-v6 events (see the module docstring).
    """
    _check_key_id(key_id)
    unsigned_part = {k: v for k, v in obj.items() if k != "signatures" and k != "unsigned"}
    signature = _sign(encode_canonical_json(unsigned_part, strict=strict), signing_key)
    out = dict(obj)
    _put_signature(out, server_name, key_id, signature)
    return out


def verify_json(
    obj: Mapping[str, Any],
    server_name: str,
    key_id: str,
    verify_key: nacl.signing.VerifyKey,
    *,
    strict: bool = False,
) -> None:
    """Raise ``SignatureError`` unless ``obj`` is signed by ``server_name`` with ``key_id``.

    Appendices, "Checking for a Signature", steps 1-7 for one key the caller has looked up.
    """
    signature = _find_signature(obj, server_name, key_id)
    unsigned_part = {k: v for k, v in obj.items() if k != "signatures" and k != "unsigned"}
    _verify(unsigned_part, signature, verify_key, strict, server_name, key_id)


# -- events (server-server API, "Signing Events") --


def sign_event(
    event: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    signing_key: nacl.signing.SigningKey,
    key_id: str,
) -> dict[str, Any]:
    """Hash and sign an outgoing event: a new dict with ``hashes.sha256`` and our signature.

    Server-server API, "Adding hashes and signatures to outgoing events": compute the content
    hash into ``hashes``, redact, sign the redacted event, copy the signature back. From v6
    the event must be strict canonical JSON (``CanonicalJSONError`` otherwise).
    """
    hashed = _hashing.add_content_hash(event, strict=room_version.strict_canonical_json)
    _sign_event_in_place(hashed, room_version, server_name, signing_key, key_id)
    return hashed


def sign_event_with_id(
    event: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    signing_key: nacl.signing.SigningKey,
    key_id: str,
) -> tuple[dict[str, Any], str]:
    """``sign_event``, also returning the new event's ID (what an event-creating path needs).

    From v3 the event ID is the reference hash, which covers exactly the bytes just signed (the
    redacted event without signatures and unsigned), so it costs one SHA-256 here instead of a
    second redaction and encoding. Room versions 1-2 return the event's own ``event_id``.
    """
    hashed = _hashing.add_content_hash(event, strict=room_version.strict_canonical_json)
    message = _sign_event_in_place(hashed, room_version, server_name, signing_key, key_id)
    if room_version.event_id_format is EventIdFormat.SERVER_GENERATED:
        event_id = hashed.get("event_id")
        if not isinstance(event_id, str):
            raise ValueError("events of this room version carry their own event_id")
        return hashed, event_id
    digest = hashlib.sha256(message).digest()
    return hashed, _hashing.event_id_from_reference_hash(digest, room_version)


def add_event_signature(
    event: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    signing_key: nacl.signing.SigningKey,
    key_id: str,
) -> dict[str, Any]:
    """Add our signature to an event as it stands, leaving its ``hashes`` untouched.

    For countersigning another server's event (an invite we receive, a restricted join we
    authorise): recomputing its content hash could only break its sender's signature.
    """
    out = dict(event)
    _sign_event_in_place(out, room_version, server_name, signing_key, key_id)
    return out


def verify_event_signature(
    event: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    key_id: str,
    verify_key: nacl.signing.VerifyKey,
) -> None:
    """Raise ``SignatureError`` unless the redacted event is signed by ``server_name``/``key_id``.

    Server-server API, "Validating hashes and signatures on received events": the check runs on
    the redacted event, so it passes for the full event and for a redacted copy alike. Which
    servers must sign, and which keys count (v5+ validity periods), is the caller's decision.
    """
    signature = _find_signature(event, server_name, key_id)
    _verify(
        redact_for_signing(event, room_version), signature, verify_key, False, server_name, key_id
    )


# -- internals --


def _check_key_id(key_id: str) -> None:
    algorithm, _, version = key_id.partition(":")
    if algorithm != ED25519 or not version:
        raise ValueError(f"signing key ID must look like 'ed25519:<version>', got {key_id!r}")


def _sign(message: bytes, signing_key: nacl.signing.SigningKey) -> str:
    return encode_base64(signing_key.sign(message).signature)


def _sign_event_in_place(
    event: dict[str, Any],
    room_version: RoomVersion,
    server_name: str,
    signing_key: nacl.signing.SigningKey,
    key_id: str,
) -> bytes:
    """Sign ``event`` (a dict we own) in place; return the signed bytes."""
    _check_key_id(key_id)
    message = encode_canonical_json(
        redact_for_signing(event, room_version), strict=room_version.strict_canonical_json
    )
    _put_signature(event, server_name, key_id, _sign(message, signing_key))
    return message


def _put_signature(out: dict[str, Any], server_name: str, key_id: str, signature: str) -> None:
    """Set ``out["signatures"][server_name][key_id]`` without mutating the shared originals."""
    existing = out.get("signatures")
    signatures = dict(existing) if isinstance(existing, dict) else {}
    ours = signatures.get(server_name)
    signatures[server_name] = {**(ours if isinstance(ours, dict) else {}), key_id: signature}
    out["signatures"] = signatures


def _find_signature(obj: Mapping[str, Any], server_name: str, key_id: str) -> str:
    """Steps 1-2 and the lookup of step 3 of "Checking for a Signature"."""
    signatures = obj.get("signatures")
    if not isinstance(signatures, dict):
        raise SignatureError("the object has no signatures")
    ours = signatures.get(server_name)
    if not isinstance(ours, dict) or not ours:
        raise SignatureError(f"no signature from {server_name}")
    if key_id.partition(":")[0] != ED25519:
        raise SignatureError(f"unsupported signing algorithm in key ID {key_id!r}")
    signature = ours.get(key_id)
    if signature is None:
        raise SignatureError(f"no signature from {server_name} with key {key_id}")
    if not isinstance(signature, str):
        raise SignatureError(f"signature from {server_name} with key {key_id} is not a string")
    return signature


def _verify(
    unsigned_part: Mapping[str, Any],
    signature: str,
    verify_key: nacl.signing.VerifyKey,
    strict: bool,
    server_name: str,
    key_id: str,
) -> None:
    """Steps 4-7: decode the signature, encode the object, check the signature."""
    try:
        signature_bytes = decode_base64(signature)
    except ValueError:
        raise SignatureError(f"signature from {server_name} ({key_id}) is not base64") from None
    try:
        message = encode_canonical_json(unsigned_part, strict=strict)
    except CanonicalJSONError as e:
        raise SignatureError(f"signed object is not canonical JSON: {e}") from None
    try:
        verify_key.verify(message, signature_bytes)
    except (nacl.exceptions.CryptoError, ValueError):
        raise SignatureError(f"bad signature from {server_name} ({key_id})") from None
