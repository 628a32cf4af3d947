"""Signing and verifying JSON and events: appendices "Signing JSON", "Cryptographic Test
Vectors", and the server-server API's "Signing Events"."""

from __future__ import annotations

import copy
from typing import Any

import nacl.signing
import pytest
import signedjson.key
import signedjson.sign
from hypothesis import given, settings
from hypothesis import strategies as st

from myelin.core.canonical_json import CanonicalJSONError, encode_canonical_json
from myelin.core.events import compute_event_id
from myelin.core.hashing import check_content_hash
from myelin.core.redaction import redact
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS, V1, V5, V6, V10, V11, V12
from myelin.core.signing import (
    SignatureError,
    add_event_signature,
    decode_base64,
    encode_base64,
    sign_event,
    sign_event_with_id,
    sign_json,
    verify_event_signature,
    verify_json,
)

# Appendices, "Cryptographic Test Vectors" -> "Signing Key".
SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SERVER_NAME = "domain"
KEY_ID = "ed25519:1"
KEY = nacl.signing.SigningKey(decode_base64(SEED))
VERIFY_KEY = KEY.verify_key
OTHER_KEY = nacl.signing.SigningKey(bytes(32))


# -- base64 (appendices, "Unpadded Base64") --


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
    ],
)
def test_unpadded_base64_appendix_examples(raw: bytes, encoded: str) -> None:
    assert encode_base64(raw) == encoded
    assert decode_base64(encoded) == raw


def test_url_safe_alphabet_uses_minus_and_underscore() -> None:
    data = bytes([0xFB, 0xFF, 0xBF])
    assert encode_base64(data) == "+/+/"
    assert encode_base64(data, urlsafe=True) == "-_-_"


@pytest.mark.parametrize("text", ["Zm8", "Zm8=", "+/+/", "-_-_", "Zg==", " Zm8 "])
def test_decoding_accepts_padded_unpadded_and_url_safe(text: str) -> None:
    decode_base64(text)


def test_decoding_accepts_the_spec_seed_with_nonzero_trailing_bits() -> None:
    # The seed's last character carries padding bits that are not zero; it must still decode.
    assert len(decode_base64(SEED)) == 32
    assert encode_base64(bytes(VERIFY_KEY)) == "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"


@pytest.mark.parametrize("text", ["!!!", "AAAAA", "Zg==Zg", "Zm9v YmFy", "é"])
def test_decoding_rejects_invalid_base64(text: str) -> None:
    with pytest.raises(ValueError):
        decode_base64(text)


# -- JSON signing: the spec's vectors (appendices, "JSON Signing") --


def test_signing_the_empty_object_matches_the_spec_vector() -> None:
    assert sign_json({}, SERVER_NAME, KEY, KEY_ID) == {
        "signatures": {
            "domain": {
                "ed25519:1": (
                    "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtT"
                    "dGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                )
            }
        }
    }


def test_signing_an_object_with_data_matches_the_spec_vector() -> None:
    signed = sign_json({"one": 1, "two": "Two"}, SERVER_NAME, KEY, KEY_ID)
    assert signed == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": (
                    "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL"
                    "53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
                )
            }
        },
        "two": "Two",
    }
    verify_json(signed, SERVER_NAME, KEY_ID, VERIFY_KEY)


def test_sign_json_agrees_with_signedjson() -> None:
    obj = {"a": [1, {"b": "ü"}], "unsigned": {"age": 5}, "signatures": {"x": {"ed25519:9": "s"}}}
    theirs = signedjson.key.decode_signing_key_base64("ed25519", "1", SEED)
    expected = signedjson.sign.sign_json(copy.deepcopy(obj), SERVER_NAME, theirs)
    assert sign_json(obj, SERVER_NAME, KEY, KEY_ID) == expected
    signedjson.sign.verify_signed_json(
        sign_json(obj, SERVER_NAME, KEY, KEY_ID),
        SERVER_NAME,
        signedjson.key.get_verify_key(theirs),
    )


def test_sign_json_keeps_other_signatures_and_unsigned_and_does_not_mutate() -> None:
    obj = {"x": 1, "signatures": {"other": {"ed25519:o": "sig"}}, "unsigned": {"age_ts": 3}}
    before = copy.deepcopy(obj)
    signed = sign_json(obj, SERVER_NAME, KEY, KEY_ID)
    assert obj == before
    assert signed["signatures"]["other"] == {"ed25519:o": "sig"}
    assert signed["unsigned"] == {"age_ts": 3}
    assert set(signed["signatures"][SERVER_NAME]) == {KEY_ID}
    # Unsigned and other servers' signatures are outside the signature.
    signed["unsigned"]["age_ts"] = 99
    signed["signatures"]["third"] = {"ed25519:t": "whatever"}
    verify_json(signed, SERVER_NAME, KEY_ID, VERIFY_KEY)


def test_sign_json_refuses_non_ed25519_key_ids() -> None:
    for bad in ("1", "rsa:1", "ed25519:"):
        with pytest.raises(ValueError):
            sign_json({}, SERVER_NAME, KEY, bad)


def test_sign_json_is_strict_unless_told_otherwise() -> None:
    with pytest.raises(CanonicalJSONError):
        sign_json({"pl": 50.5}, SERVER_NAME, KEY, KEY_ID)
    signed = sign_json({"pl": 50.5}, SERVER_NAME, KEY, KEY_ID, strict=False)
    verify_json(signed, SERVER_NAME, KEY_ID, VERIFY_KEY)  # lenient by default
    with pytest.raises(SignatureError, match="canonical"):
        verify_json(signed, SERVER_NAME, KEY_ID, VERIFY_KEY, strict=True)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"a": 1}, "no signatures"),
        ({"signatures": {}}, "no signature from domain"),
        ({"signatures": {"domain": {"ed25519:2": "x"}}}, "with key ed25519:1"),
        ({"signatures": {"domain": {"ed25519:1": 5}}}, "not a string"),
        ({"signatures": {"domain": {"ed25519:1": "!!"}}}, "not base64"),
        ({"signatures": {"domain": {"ed25519:1": "AAAA"}}}, "bad signature"),
    ],
)
def test_verify_json_failures(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_json(obj, SERVER_NAME, KEY_ID, VERIFY_KEY)


def test_verify_json_rejects_unknown_algorithms_and_wrong_keys() -> None:
    signed = sign_json({"a": 1}, SERVER_NAME, KEY, KEY_ID)
    with pytest.raises(SignatureError, match="algorithm"):
        verify_json(signed, SERVER_NAME, "curve25519:1", VERIFY_KEY)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_json(signed, SERVER_NAME, KEY_ID, OTHER_KEY.verify_key)
    with pytest.raises(SignatureError, match="no signature from elsewhere"):
        verify_json(signed, "elsewhere", KEY_ID, VERIFY_KEY)


# -- event signing: the spec's vectors (appendices, "Event Signing") --

MINIMAL_EVENT = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {"age_ts": 1000000},
}
MINIMAL_EVENT_SIGNED = {
    "auth_events": [],
    "content": {},
    "depth": 3,
    "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "prev_events": [],
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "signatures": {
        "domain": {
            "ed25519:1": (
                "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPT"
                "Rl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
            )
        }
    },
    "type": "X",
    "unsigned": {"age_ts": 1000000},
}
MESSAGE_EVENT = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {},
    "unsigned": {"age_ts": 1000000},
}
MESSAGE_EVENT_SIGNED = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {
        "domain": {
            "ed25519:1": (
                "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUw"
                "u6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
            )
        }
    },
    "unsigned": {"age_ts": 1000000},
}

# The vectors use the original redaction rules (they keep "origin"): room versions 1-10.
PRE_V11 = [v for v in KNOWN_ROOM_VERSIONS.values() if not v.updated_redaction_rules]


@pytest.mark.parametrize("room_version", PRE_V11, ids=lambda v: f"v{v.identifier}")
def test_minimal_event_matches_the_spec_vector(room_version: Any) -> None:
    signed = sign_event(MINIMAL_EVENT, room_version, SERVER_NAME, KEY, KEY_ID)
    assert signed == MINIMAL_EVENT_SIGNED
    assert encode_canonical_json(signed) == encode_canonical_json(MINIMAL_EVENT_SIGNED)
    verify_event_signature(signed, room_version, SERVER_NAME, KEY_ID, VERIFY_KEY)


@pytest.mark.parametrize("room_version", PRE_V11, ids=lambda v: f"v{v.identifier}")
def test_redactable_event_matches_the_spec_vector(room_version: Any) -> None:
    signed = sign_event(MESSAGE_EVENT, room_version, SERVER_NAME, KEY, KEY_ID)
    assert signed == MESSAGE_EVENT_SIGNED
    verify_event_signature(signed, room_version, SERVER_NAME, KEY_ID, VERIFY_KEY)


def test_spec_vectors_verify_as_given() -> None:
    for signed in (MINIMAL_EVENT_SIGNED, MESSAGE_EVENT_SIGNED):
        verify_event_signature(signed, V1, SERVER_NAME, KEY_ID, VERIFY_KEY)
        assert check_content_hash(signed)


def test_v11_redaction_rules_change_the_signature_of_the_same_event() -> None:
    # v11 no longer protects "origin", so the signed (redacted) bytes differ.
    signed = sign_event(MINIMAL_EVENT, V11, SERVER_NAME, KEY, KEY_ID)
    assert signed["hashes"] == MINIMAL_EVENT_SIGNED["hashes"]
    assert signed["signatures"] != MINIMAL_EVENT_SIGNED["signatures"]
    verify_event_signature(signed, V11, SERVER_NAME, KEY_ID, VERIFY_KEY)
    with pytest.raises(SignatureError):
        verify_event_signature(signed, V10, SERVER_NAME, KEY_ID, VERIFY_KEY)


# -- event signing behaviour --


def _message(room_version: Any = V12, **extra: Any) -> dict[str, Any]:
    event = {
        "type": "m.room.message",
        "room_id": "!" + "A" * 43,
        "sender": "@alice:example.org",
        "origin_server_ts": 1_700_000_000_000,
        "depth": 10,
        "auth_events": ["$" + "B" * 43],
        "prev_events": ["$" + "C" * 43],
        "content": {"msgtype": "m.text", "body": "hello"},
        "unsigned": {"age": 4},
    }
    event.update(extra)
    return event


def test_sign_event_does_not_mutate_its_input() -> None:
    event = _message(signatures={"other.org": {"ed25519:x": "s"}})
    before = copy.deepcopy(event)
    signed = sign_event(event, V12, "example.org", KEY, KEY_ID)
    assert event == before
    assert signed["signatures"]["other.org"] == {"ed25519:x": "s"}
    assert set(signed["signatures"]["example.org"]) == {KEY_ID}


def test_verification_passes_on_the_redacted_copy() -> None:
    signed = sign_event(_message(), V12, "example.org", KEY, KEY_ID)
    verify_event_signature(redact(signed, V12), V12, "example.org", KEY_ID, VERIFY_KEY)
    # The content hash is what tells the two apart.
    assert check_content_hash(signed)
    assert not check_content_hash(redact(signed, V12))


def test_sign_event_is_strict_from_v6_only() -> None:
    event = _message(content={"body": "x", "weight": 0.5}, room_id="!r:example.org")
    with pytest.raises(CanonicalJSONError):
        sign_event(event, V6, "example.org", KEY, KEY_ID)
    signed = sign_event(event, V5, "example.org", KEY, KEY_ID)
    verify_event_signature(signed, V5, "example.org", KEY_ID, VERIFY_KEY)
    assert check_content_hash(signed)


def test_add_event_signature_countersigns_without_touching_hashes() -> None:
    signed = sign_event(_message(), V12, "example.org", KEY, KEY_ID)
    other_key = nacl.signing.SigningKey(b"\x07" * 32)
    both = add_event_signature(signed, V12, "resident.org", other_key, "ed25519:r")
    assert both["hashes"] is signed["hashes"]
    verify_event_signature(both, V12, "example.org", KEY_ID, VERIFY_KEY)
    verify_event_signature(both, V12, "resident.org", "ed25519:r", other_key.verify_key)
    assert compute_event_id(both, V12) == compute_event_id(signed, V12)


@pytest.mark.parametrize(
    "room_version", list(KNOWN_ROOM_VERSIONS.values()), ids=lambda v: f"v{v.identifier}"
)
def test_sign_event_with_id_matches_compute_event_id(room_version: Any) -> None:
    event = _message(room_id="!r:example.org")
    if room_version.identifier in ("1", "2"):
        event.update(event_id="$abc:example.org", auth_events=[], prev_events=[])
    signed, event_id = sign_event_with_id(event, room_version, "example.org", KEY, KEY_ID)
    assert signed == sign_event(event, room_version, "example.org", KEY, KEY_ID)
    assert event_id == compute_event_id(signed, room_version)


# -- properties --

_keys = st.text(min_size=1, max_size=8)
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=15,
)
_objects = st.dictionaries(_keys.filter(lambda k: k not in ("signatures", "unsigned")), _values)


@settings(max_examples=200)
@given(_objects, st.text(min_size=1, max_size=10))
def test_sign_then_verify_round_trips(obj: dict[str, Any], server_name: str) -> None:
    signed = sign_json(obj, server_name, KEY, KEY_ID)
    verify_json(signed, server_name, KEY_ID, VERIFY_KEY)
    with pytest.raises(SignatureError):
        verify_json(signed, server_name, KEY_ID, OTHER_KEY.verify_key)


@settings(max_examples=200)
@given(_objects.filter(bool), st.data())
def test_any_change_to_a_signed_field_breaks_the_signature(
    obj: dict[str, Any], data: st.DataObject
) -> None:
    signed = sign_json(obj, SERVER_NAME, KEY, KEY_ID)
    key = data.draw(st.sampled_from(sorted(obj)))
    new_value = data.draw(_values.filter(lambda v: v != obj[key]))
    tampered = {**signed, key: new_value}
    with pytest.raises(SignatureError):
        verify_json(tampered, SERVER_NAME, KEY_ID, VERIFY_KEY)
    extra_key = data.draw(_keys.filter(lambda k: k not in signed))
    with pytest.raises(SignatureError):
        verify_json({**signed, extra_key: 1}, SERVER_NAME, KEY_ID, VERIFY_KEY)


_PROTECTED_V12 = ["type", "room_id", "sender", "origin_server_ts", "depth", "prev_events"]


@settings(max_examples=100)
@given(st.sampled_from(_PROTECTED_V12), st.text(max_size=5))
def test_changing_a_protected_event_field_breaks_the_event_signature(
    field: str, suffix: str
) -> None:
    signed = sign_event(_message(), V12, "example.org", KEY, KEY_ID)
    value = signed[field]
    changed: Any = (
        value + 1
        if isinstance(value, int)
        else [*value, "$x"]
        if isinstance(value, list)
        else value + suffix + "!"
    )
    with pytest.raises(SignatureError):
        verify_event_signature({**signed, field: changed}, V12, "example.org", KEY_ID, VERIFY_KEY)


def test_changing_unprotected_content_keeps_the_signature_but_breaks_the_hash() -> None:
    signed = sign_event(_message(), V12, "example.org", KEY, KEY_ID)
    edited = {**signed, "content": {"body": "edited", "msgtype": "m.text"}}
    verify_event_signature(edited, V12, "example.org", KEY_ID, VERIFY_KEY)
    assert not check_content_hash(edited)
    with pytest.raises(SignatureError):  # ...but the hash itself is signed
        verify_event_signature(
            {**edited, "hashes": {"sha256": "A" * 43}}, V12, "example.org", KEY_ID, VERIFY_KEY
        )
