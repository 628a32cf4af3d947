"""Content hashes and reference hashes (server-server API, "Calculating the content hash for an
event", "Calculating the reference hash for an event")."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import canonicaljson
import pytest

from myelin.core.hashing import (
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    event_id_from_reference_hash,
    reference_hash,
)
from myelin.core.room_versions import V1, V3, V4, V5, V11, V12
from myelin.core.signing import decode_base64, encode_base64

# Appendices, "Cryptographic Test Vectors" -> "Event Signing": the events before signing and the
# content hashes the spec gives for them.
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

# Real events as a Synapse server produced them (also used as fixtures by gomatrixserverlib's
# eventversion_test.go): a room version 1 m.room.name and a room version 5 m.room.create.
REAL_V1_EVENT = json.loads(
    '{"auth_events":[["$oXL79cT7fFxR7dPH:localhost",{"sha256":"abjkiDSg1RkuZrbj2jZoGMlQaaj1Ue3Jhi7'
    'I7NlKfXY"}],["$IVUsaSkm1LBAZYYh:localhost",{"sha256":"X7RUj46hM/8sUHNBIFkStbOauPvbDzjSdH4Nib'
    'YWnko"}],["$VS2QT0EeArZYi8wf:localhost",{"sha256":"k9eM6utkCH8vhLW9/oRsH74jOBS/6RVK42iGDFbyl'
    'no"}]],"content":{"name":"test3"},"depth":7,"event_id":"$yvN1b43rlmcOs5fY:localhost","hashes'
    '":{"sha256":"Oh1mwI1jEqZ3tgJ+V1Dmu5nOEGpCE4RFUqyJv2gQXKs"},"origin":"localhost","origin_serv'
    'er_ts":1510854416361,"prev_events":[["$FqI6TVvWpcbcnJ97:localhost",{"sha256":"upCsBqUhNUgT2/+'
    'zkzg8TbqdQpWWKQnZpGJc6KcbUC4"}]],"prev_state":[],"room_id":"!19Mp0U9hjajeIiw1:localhost","se'
    'nder":"@test:localhost","signatures":{"localhost":{"ed25519:u9kP":"5IzSuRXkxvbTp0vZhhXYZeOe+6'
    '19iG3AybJXr7zfNn/4vHz4TH7qSJVQXSaHHvcTcDodAKHnTG1WDulgO5okAQ"}},"state_key":"","type":"m.roo'
    'm.name"}'
)
REAL_V5_CREATE = json.loads(
    '{"auth_events": [], "prev_events": [], "type": "m.room.create", "room_id": "!uXDCzlYgCTHtiW'
    'CkEx:jki.re", "sender": "@erikj:jki.re", "content": {"room_version": "5", "predecessor": {"ro'
    'om_id": "!gdRMqOrTFdOCYHNwOo:half-shot.uk", "event_id": "$LP7ROBc4b+cMc1UE9haIz8q5AK2AIW4eJ9'
    '0FfKLvyZI"}, "creator": "@erikj:jki.re"}, "depth": 1, "prev_state": [], "state_key": "", "or'
    'igin": "jki.re", "origin_server_ts": 1560284621137, "hashes": {"sha256": "IX6zuNiJpJPNf70BLle'
    'L3HSCpjKeq9Uhu7uUpyDjBmc"}, "signatures": {"jki.re": {"ed25519:auto": "O4IyFfF2PPtGp5uaDm8t5'
    '7dZbdh8vc8Q64LgCwvzYRVItAMI0uisfiAFaxkVT7MRpzh6N2QNN5NMRXZKmgPYDA"}}, "unsigned": {"age": 132'
    "1650}}"
)


def test_content_hash_of_the_minimal_spec_event() -> None:
    assert encode_base64(compute_content_hash(MINIMAL_EVENT)) == (
        "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
    )


def test_content_hash_of_the_redactable_spec_event() -> None:
    assert encode_base64(compute_content_hash(MESSAGE_EVENT)) == (
        "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
    )


@pytest.mark.parametrize("event", [REAL_V1_EVENT, REAL_V5_CREATE], ids=["v1-name", "v5-create"])
def test_content_hashes_of_real_events_check(event: dict[str, Any]) -> None:
    assert check_content_hash(event)


def test_content_hash_is_sha256_of_canonical_json_without_the_three_keys() -> None:
    stripped = {k: v for k, v in MESSAGE_EVENT.items() if k not in ("unsigned", "signatures")}
    expected = hashlib.sha256(canonicaljson.encode_canonical_json(stripped)).digest()
    assert compute_content_hash(MESSAGE_EVENT) == expected


def test_content_hash_ignores_unsigned_signatures_and_hashes_only() -> None:
    base = compute_content_hash(MESSAGE_EVENT)
    for key, value in [
        ("unsigned", {"age": 1}),
        ("signatures", {"x": {"ed25519:1": "y"}}),
        ("hashes", {"sha256": "z"}),
    ]:
        assert compute_content_hash({**MESSAGE_EVENT, key: value}) == base
    for key, value in [("content", {"body": "other"}), ("origin", "x"), ("extra", 1)]:
        assert compute_content_hash({**MESSAGE_EVENT, key: value}) != base


def test_add_content_hash_returns_a_new_event() -> None:
    event = copy.deepcopy(MINIMAL_EVENT)
    event["hashes"] = {"blake3": "kept"}
    hashed = add_content_hash(event)
    assert event["hashes"] == {"blake3": "kept"}
    assert hashed["hashes"] == {
        "blake3": "kept",
        "sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos",
    }
    assert check_content_hash(hashed)


def test_add_content_hash_strict_mode() -> None:
    with pytest.raises(ValueError):
        add_content_hash({**MESSAGE_EVENT, "content": {"x": 0.5}}, strict=True)
    assert check_content_hash(add_content_hash({**MESSAGE_EVENT, "content": {"x": 0.5}}))


@pytest.mark.parametrize(
    "hashes",
    [None, "x", {}, {"sha256": 5}, {"sha256": "!!"}, {"sha256": "A" * 43}, {"sha1": "x"}],
)
def test_check_content_hash_fails_without_a_matching_hash(hashes: Any) -> None:
    event = dict(MESSAGE_EVENT)
    if hashes is not None:
        event["hashes"] = hashes
    assert not check_content_hash(event)


def test_check_content_hash_decodes_padded_and_url_safe_hashes() -> None:
    digest = compute_content_hash(MESSAGE_EVENT)
    padded = encode_base64(digest) + "="
    assert check_content_hash({**MESSAGE_EVENT, "hashes": {"sha256": padded}})
    urlsafe = encode_base64(digest, urlsafe=True)
    assert check_content_hash({**MESSAGE_EVENT, "hashes": {"sha256": urlsafe}})


def test_reference_hash_is_sha256_of_the_redacted_event_without_signatures_and_unsigned() -> None:
    # By hand for v1, following "Calculating the reference hash for an event" step by step.
    redacted = {
        key: value
        for key, value in REAL_V1_EVENT.items()
        if key not in ("signatures", "unsigned")  # step 2
    }
    redacted["content"] = {}  # step 1: m.room.name keeps no content keys
    expected = hashlib.sha256(canonicaljson.encode_canonical_json(redacted)).digest()  # 3, 4
    assert reference_hash(REAL_V1_EVENT, V1) == expected


def test_reference_hash_ignores_what_redaction_strips() -> None:
    base = reference_hash(REAL_V5_CREATE, V5)
    assert reference_hash({**REAL_V5_CREATE, "unsigned": {}}, V5) == base
    assert reference_hash({**REAL_V5_CREATE, "signatures": {}}, V5) == base
    assert reference_hash({**REAL_V5_CREATE, "unknown_key": 1}, V5) == base
    content = {**REAL_V5_CREATE["content"], "m.federate": False}  # not kept before v11
    assert reference_hash({**REAL_V5_CREATE, "content": content}, V5) == base
    assert reference_hash({**REAL_V5_CREATE, "content": content}, V11) != reference_hash(
        REAL_V5_CREATE, V11
    )
    assert reference_hash({**REAL_V5_CREATE, "hashes": {"sha256": "x"}}, V5) != base
    assert reference_hash({**REAL_V5_CREATE, "depth": 2}, V5) != base


def test_reference_hash_depends_on_the_room_versions_redaction_rules() -> None:
    # v11 no longer keeps origin/prev_state, so the same dict hashes differently.
    assert reference_hash(REAL_V5_CREATE, V5) != reference_hash(REAL_V5_CREATE, V11)
    assert reference_hash(REAL_V5_CREATE, V11) == reference_hash(REAL_V5_CREATE, V12)


def test_reference_hash_accepts_pre_v6_floats() -> None:
    event = {**REAL_V5_CREATE, "depth": 1, "type": "m.room.power_levels",
             "content": {"users": {"@bob:localhost": 50.57}}}  # fmt: skip
    stripped = {k: v for k, v in event.items() if k not in ("signatures", "unsigned")}
    expected = hashlib.sha256(canonicaljson.encode_canonical_json(stripped)).digest()
    assert reference_hash(event, V5) == expected


def test_event_id_from_reference_hash_alphabets() -> None:
    digest = decode_base64("RrGxF28UrHLmoASHndYb9Jb/1SFww2ptmtur9INS438")
    assert (
        event_id_from_reference_hash(digest, V3) == "$RrGxF28UrHLmoASHndYb9Jb/1SFww2ptmtur9INS438"
    )
    assert (
        event_id_from_reference_hash(digest, V4) == "$RrGxF28UrHLmoASHndYb9Jb_1SFww2ptmtur9INS438"
    )
    with pytest.raises(ValueError):
        event_id_from_reference_hash(digest, V1)
