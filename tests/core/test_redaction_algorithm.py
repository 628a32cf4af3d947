"""The redaction algorithm, key by key against the spec's lists.

The tables below are transcribed from the spec (rooms/fragments/v1-redactions.md for v1-v5,
v6-redactions.md for v6-v7, rooms/v8.md for v8, v9-redactions.md for v9-v10,
v11-redactions.md for v11-v12). Every test id names the variant and the event type.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from myelin.core.redaction import redact, redact_for_signing
from myelin.core.room_versions import (
    V1,
    V2,
    V3,
    V4,
    V5,
    V6,
    V7,
    V8,
    V9,
    V10,
    V11,
    V12,
    RoomVersion,
)

VARIANTS: dict[str, tuple[RoomVersion, ...]] = {
    "v1-v5": (V1, V2, V3, V4, V5),
    "v6-v7": (V6, V7),
    "v8": (V8,),
    "v9-v10": (V9, V10),
    "v11-v12": (V11, V12),
}

# "the server must strip off any keys not in the following list"
TOP_LEVEL_V1 = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "prev_state", "auth_events", "origin", "origin_server_ts",
    "membership",
}  # fmt: skip
TOP_LEVEL_V11 = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "auth_events", "origin_server_ts",
}  # fmt: skip
TOP_LEVEL = {
    "v1-v5": TOP_LEVEL_V1,
    "v6-v7": TOP_LEVEL_V1,
    "v8": TOP_LEVEL_V1,
    "v9-v10": TOP_LEVEL_V1,
    "v11-v12": TOP_LEVEL_V11,
}

POWER_LEVELS = {
    "ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default",
}  # fmt: skip
ALL_KEYS = object()  # "allows all keys"
# "The content object must also be stripped of all keys, unless it is one of the following
# event types"; event types not listed keep nothing.
CONTENT_KEYS: dict[str, dict[str, Any]] = {
    "v1-v5": {
        "m.room.member": {"membership"},
        "m.room.create": {"creator"},
        "m.room.join_rules": {"join_rule"},
        "m.room.power_levels": POWER_LEVELS,
        "m.room.aliases": {"aliases"},
        "m.room.history_visibility": {"history_visibility"},
    },
    "v6-v7": {
        "m.room.member": {"membership"},
        "m.room.create": {"creator"},
        "m.room.join_rules": {"join_rule"},
        "m.room.power_levels": POWER_LEVELS,
        "m.room.history_visibility": {"history_visibility"},
    },
    "v8": {
        "m.room.member": {"membership"},
        "m.room.create": {"creator"},
        "m.room.join_rules": {"join_rule", "allow"},
        "m.room.power_levels": POWER_LEVELS,
        "m.room.history_visibility": {"history_visibility"},
    },
    "v9-v10": {
        "m.room.member": {"membership", "join_authorised_via_users_server"},
        "m.room.create": {"creator"},
        "m.room.join_rules": {"join_rule", "allow"},
        "m.room.power_levels": POWER_LEVELS,
        "m.room.history_visibility": {"history_visibility"},
    },
    "v11-v12": {
        # (plus the "signed" key of "third_party_invite": see the dedicated tests below)
        "m.room.member": {"membership", "join_authorised_via_users_server"},
        "m.room.create": ALL_KEYS,
        "m.room.join_rules": {"join_rule", "allow"},
        "m.room.power_levels": POWER_LEVELS | {"invite"},
        "m.room.history_visibility": {"history_visibility"},
        "m.room.redaction": {"redacts"},
    },
}

EVENT_TYPES = [
    "m.room.member",
    "m.room.create",
    "m.room.join_rules",
    "m.room.power_levels",
    "m.room.aliases",
    "m.room.history_visibility",
    "m.room.redaction",
    "m.room.message",
    "m.room.topic",
    "m.room.name",
    "m.room.server_acl",
    "m.room.third_party_invite",
    "m.room.encryption",
    "org.example.custom",
]

# Every key any variant keeps for any type, plus keys no variant keeps.
CANDIDATE_CONTENT_KEYS = {
    "membership", "join_authorised_via_users_server", "creator", "join_rule", "allow",
    "aliases", "history_visibility", "redacts", "invite", "notifications", "room_version",
    "predecessor", "m.federate", "type", "additional_creators", "body", "msgtype",
    "displayname", "avatar_url", "reason", "topic", "name", "deny", "allow_ip_literals",
    "algorithm", "is_direct", "m.relates_to",
} | POWER_LEVELS  # fmt: skip


def _cases() -> list[Any]:
    cases = []
    for variant, versions in VARIANTS.items():
        for version in versions:
            for event_type in EVENT_TYPES:
                cases.append(
                    pytest.param(
                        variant,
                        version,
                        event_type,
                        id=f"{variant}-v{version.identifier}-{event_type}",
                    )
                )
    return cases


def _event(event_type: str, content: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {key: f"value of {key}" for key in TOP_LEVEL_V1}
    event.update(
        type=event_type,
        content=content,
        hashes={"sha256": "h"},
        signatures={"example.org": {"ed25519:1": "s"}},
        unsigned={"age": 1, "redacted_because": {}},
        redacts="$top-level-redacts",  # v1-v10 m.room.redaction: not in any keep list
        origin="example.org",
        extra_top_level_key={"x": 1},
        replaces_state="$old",
    )
    return event


@pytest.mark.parametrize(("variant", "room_version", "event_type"), _cases())
def test_top_level_keys(variant: str, room_version: RoomVersion, event_type: str) -> None:
    event = _event(event_type, {"body": "b"})
    redacted = redact(event, room_version)
    assert set(redacted) == TOP_LEVEL[variant]
    for key in TOP_LEVEL[variant] - {"content"}:
        assert redacted[key] == event[key], key


@pytest.mark.parametrize(("variant", "room_version", "event_type"), _cases())
def test_content_keys(variant: str, room_version: RoomVersion, event_type: str) -> None:
    content = {key: {"value of": key} for key in CANDIDATE_CONTENT_KEYS}
    redacted = redact(_event(event_type, content), room_version)
    expected = CONTENT_KEYS[variant].get(event_type, set())
    if expected is ALL_KEYS:
        assert redacted["content"] == content
    else:
        assert set(redacted["content"]) == expected
        for key in expected:
            assert redacted["content"][key] == content[key]


@pytest.mark.parametrize(("variant", "room_version", "event_type"), _cases())
def test_content_keys_are_only_kept_when_present(
    variant: str, room_version: RoomVersion, event_type: str
) -> None:
    assert redact(_event(event_type, {"unrelated": 1}), room_version)["content"] == (
        {"unrelated": 1} if CONTENT_KEYS[variant].get(event_type) is ALL_KEYS else {}
    )


# -- v11+: m.room.member keeps only the "signed" key of "third_party_invite" --

SIGNED = {"mxid": "@bob:example.org", "token": "abc", "signatures": {"id.example": {}}}


@pytest.mark.parametrize("room_version", VARIANTS["v11-v12"], ids=lambda v: f"v{v.identifier}")
def test_v11_m_room_member_third_party_invite_keeps_signed_only(room_version: RoomVersion) -> None:
    content = {
        "membership": "invite",
        "third_party_invite": {"display_name": "Bob", "signed": SIGNED},
        "displayname": "Bob",
    }
    assert redact(_event("m.room.member", content), room_version)["content"] == {
        "membership": "invite",
        "third_party_invite": {"signed": SIGNED},
    }


@pytest.mark.parametrize("room_version", VARIANTS["v11-v12"], ids=lambda v: f"v{v.identifier}")
def test_v11_m_room_member_third_party_invite_without_signed(room_version: RoomVersion) -> None:
    content = {"membership": "invite", "third_party_invite": {"display_name": "Bob"}}
    assert redact(_event("m.room.member", content), room_version)["content"] == {
        "membership": "invite",
        "third_party_invite": {},
    }
    content = {"membership": "invite", "third_party_invite": "not an object"}
    assert redact(_event("m.room.member", content), room_version)["content"] == {
        "membership": "invite"
    }


@pytest.mark.parametrize(
    "room_version",
    [v for name, vs in VARIANTS.items() if name != "v11-v12" for v in vs],
    ids=lambda v: f"v{v.identifier}",
)
def test_before_v11_m_room_member_third_party_invite_is_stripped(room_version: RoomVersion) -> None:
    content = {"membership": "invite", "third_party_invite": {"signed": SIGNED}}
    assert (
        "third_party_invite"
        not in redact(_event("m.room.member", content), room_version)["content"]
    )


# -- details --


@pytest.mark.parametrize("room_version", [V1, V6, V9, V11, V12], ids=lambda v: f"v{v.identifier}")
def test_m_room_redaction_top_level_redacts_is_always_stripped(room_version: RoomVersion) -> None:
    event = _event("m.room.redaction", {"redacts": "$target", "reason": "spam"})
    redacted = redact(event, room_version)
    assert "redacts" not in redacted
    expected = {"redacts": "$target"} if room_version.updated_redaction_rules else {}
    assert redacted["content"] == expected


def test_v11_m_room_create_keeps_nested_content_whole() -> None:
    content = {"room_version": "11", "predecessor": {"room_id": "!a:b", "event_id": "$c"},
               "m.federate": False, "type": "m.space"}  # fmt: skip
    assert redact(_event("m.room.create", content), V11)["content"] == content
    assert redact(_event("m.room.create", {**content, "creator": "@a:b"}), V10)["content"] == {
        "creator": "@a:b"
    }


@pytest.mark.parametrize("room_version", [V1, V8, V11], ids=lambda v: f"v{v.identifier}")
def test_unsigned_is_stripped(room_version: RoomVersion) -> None:
    assert "unsigned" not in redact(_event("m.room.message", {}), room_version)


@pytest.mark.parametrize(
    "room_version", [v for vs in VARIANTS.values() for v in vs], ids=lambda v: f"v{v.identifier}"
)
def test_redaction_is_idempotent_and_does_not_mutate(room_version: RoomVersion) -> None:
    for event_type in EVENT_TYPES:
        event = _event(event_type, {key: [key] for key in CANDIDATE_CONTENT_KEYS})
        event["content"]["third_party_invite"] = {"signed": SIGNED, "x": 1}
        before = copy.deepcopy(event)
        once = redact(event, room_version)
        assert event == before
        assert redact(once, room_version) == once
        assert once is not event and once["content"] is not event["content"]


def test_missing_content_stays_missing_and_non_object_content_becomes_empty() -> None:
    event = _event("m.room.member", {})
    del event["content"]
    assert "content" not in redact(event, V12)
    event["content"] = ["not", "an", "object"]
    assert redact(event, V12)["content"] == {}
    assert redact({**event, "type": ["unhashable"], "content": {"a": 1}}, V12)["content"] == {}


@pytest.mark.parametrize("room_version", [V1, V9, V12], ids=lambda v: f"v{v.identifier}")
def test_redact_for_signing_is_redact_without_signatures(room_version: RoomVersion) -> None:
    event = _event("m.room.power_levels", {"users": {"@a:b": 100}, "other": 1})
    expected = redact(event, room_version)
    del expected["signatures"]
    assert redact_for_signing(event, room_version) == expected


def test_custom_room_versions_use_their_own_flags() -> None:
    custom = V10.evolve("org.example.custom", redaction_keeps_aliases=True)
    redacted = redact(_event("m.room.aliases", {"aliases": ["#a:b"], "x": 1}), custom)
    assert redacted["content"] == {"aliases": ["#a:b"]}
    assert redact(_event("m.room.aliases", {"aliases": ["#a:b"]}), V10)["content"] == {}
