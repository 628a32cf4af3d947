"""Event IDs per room version (rooms/fragments/v1-event-ids.md, rooms/v3.md "Event IDs",
rooms/fragments/v4-event-ids.md) and v12 room IDs (rooms/v12.md, appendices "Room IDs")."""

from __future__ import annotations

import json
import random
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from myelin.core.event_format import room_id_for_create_event
from myelin.core.events import PDU, compute_event_id
from myelin.core.hashing import reference_hash
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS, V1, V2, V3, V4, V5, V11, V12
from myelin.core.signing import add_event_signature, encode_base64, sign_event

# A room version 5 create event as jki.re's Synapse produced it; gomatrixserverlib's
# eventversion_test.go uses it with these expected IDs.
REAL_CREATE = json.loads(
    '{"auth_events": [], "prev_events": [], "type": "m.room.create", "room_id": "!uXDCzlYgCTHtiW'
    'CkEx:jki.re", "sender": "@erikj:jki.re", "content": {"room_version": "5", "predecessor": {"ro'
    'om_id": "!gdRMqOrTFdOCYHNwOo:half-shot.uk", "event_id": "$LP7ROBc4b+cMc1UE9haIz8q5AK2AIW4eJ9'
    '0FfKLvyZI"}, "creator": "@erikj:jki.re"}, "depth": 1, "prev_state": [], "state_key": "", "or'
    'igin": "jki.re", "origin_server_ts": 1560284621137, "hashes": {"sha256": "IX6zuNiJpJPNf70BLle'
    'L3HSCpjKeq9Uhu7uUpyDjBmc"}, "signatures": {"jki.re": {"ed25519:auto": "O4IyFfF2PPtGp5uaDm8t5'
    '7dZbdh8vc8Q64LgCwvzYRVItAMI0uisfiAFaxkVT7MRpzh6N2QNN5NMRXZKmgPYDA"}}, "unsigned": {"age": 132'
    "1650}}"
)
KEY = nacl.signing.SigningKey(bytes(range(32)))


def test_real_event_id_in_room_version_3_uses_standard_base64() -> None:
    assert compute_event_id(REAL_CREATE, V3) == "$RrGxF28UrHLmoASHndYb9Jb/1SFww2ptmtur9INS438"


@pytest.mark.parametrize("v", [V4, V5], ids=lambda v: f"v{v.identifier}")
def test_real_event_id_from_room_version_4_uses_url_safe_base64(v: Any) -> None:
    assert compute_event_id(REAL_CREATE, v) == "$RrGxF28UrHLmoASHndYb9Jb_1SFww2ptmtur9INS438"


@pytest.mark.parametrize("v", [V1, V2], ids=lambda v: f"v{v.identifier}")
def test_v1_v2_event_ids_are_carried_in_the_event(v: Any) -> None:
    assert compute_event_id({**REAL_CREATE, "event_id": "$abc:jki.re"}, v) == "$abc:jki.re"
    with pytest.raises(ValueError):
        compute_event_id(REAL_CREATE, v)


@pytest.mark.parametrize(
    "v", list(KNOWN_ROOM_VERSIONS.values())[2:], ids=lambda v: f"v{v.identifier}"
)
def test_hash_event_ids_are_dollar_and_43_characters(v: Any) -> None:
    event_id = compute_event_id(REAL_CREATE, v)
    assert event_id == "$" + encode_base64(reference_hash(REAL_CREATE, v), urlsafe=v is not V3)
    assert len(event_id) == 44


def test_event_id_ignores_unsigned_and_added_signatures() -> None:
    signed = sign_event({**REAL_CREATE, "signatures": {}}, V12, "jki.re", KEY, "ed25519:a")
    event_id = compute_event_id(signed, V12)
    countersigned = add_event_signature(signed, V12, "other.org", KEY, "ed25519:b")
    assert compute_event_id(countersigned, V12) == event_id
    assert compute_event_id({**signed, "unsigned": {"age": 99999}}, V12) == event_id


def test_event_id_covers_content_only_through_the_content_hash() -> None:
    message = {**REAL_CREATE, "type": "m.room.message", "content": {"body": "a"}}
    event_id = compute_event_id(message, V12)
    assert compute_event_id({**message, "content": {"body": "b"}}, V12) == event_id
    rehashed = sign_event({**message, "content": {"body": "b"}}, V12, "jki.re", KEY, "ed25519:a")
    assert compute_event_id(rehashed, V12) != event_id


def test_pdu_event_id_uses_the_room_versions_format() -> None:
    assert PDU(REAL_CREATE, V3).event_id == "$RrGxF28UrHLmoASHndYb9Jb/1SFww2ptmtur9INS438"
    assert PDU(REAL_CREATE, V4).event_id == "$RrGxF28UrHLmoASHndYb9Jb_1SFww2ptmtur9INS438"
    assert PDU(REAL_CREATE, V11).event_id != PDU(REAL_CREATE, V4).event_id  # redaction rules


# -- v12: the room ID is the create event's ID with "!" --


def test_v12_room_id_is_the_create_event_id_with_a_bang() -> None:
    create = {k: v for k, v in REAL_CREATE.items() if k not in ("room_id", "origin", "prev_state")}
    create["content"] = {"room_version": "12"}
    event_id = compute_event_id(create, V12)
    assert room_id_for_create_event(create, V12) == "!" + event_id[1:]
    assert PDU(create, V12).room_id == "!" + event_id[1:]


# -- property: the ID does not depend on dict ordering --

_keys = st.text(min_size=1, max_size=6)
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=10,
)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@settings(max_examples=200)
@given(
    st.sampled_from(["m.room.message", "m.room.create", "m.room.power_levels", "m.room.member"]),
    st.dictionaries(_keys, _values, max_size=6),
    st.dictionaries(_keys, _values, max_size=4),
    st.sampled_from(list(KNOWN_ROOM_VERSIONS.values())[2:]),
    st.randoms(use_true_random=False),
)
def test_event_id_is_stable_under_dict_ordering(
    event_type: str, content: dict[str, Any], extra: dict[str, Any], v: Any, rng: random.Random
) -> None:
    event = {**extra, **REAL_CREATE, "type": event_type, "content": content}
    assert compute_event_id(_shuffled(event, rng), v) == compute_event_id(event, v)
