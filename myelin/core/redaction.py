"""The redaction algorithm: what survives of an event once it is redacted.

Room versions, "Redactions" (rooms/fragments/v1-redactions.md for v1-v5, v6-redactions.md for
v6-v7, rooms/v8.md for v8, v9-redactions.md for v9-v10, v11-redactions.md for v11 and later).
It is not only for honouring ``m.room.redaction``: event signatures and the reference hash
(hence v3+ event IDs) are computed over the redacted event (server-server API, "Signing
Events"), so every server must produce exactly the same redacted form, key for key.

The functions return new dicts (the top level and ``content``); values that are kept whole
(``hashes``, ``signatures``, ``content.users`` ...) are shared with the input, which is treated
as read-only like everywhere in ``myelin.core``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from myelin.core.room_versions import RoomVersion

__all__ = ["redact", "redact_for_signing"]

# v1-v10: the top-level keys the redaction algorithm keeps.
_TOP_LEVEL_V1 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)
# v11+ ("updated redaction rules"): origin, membership and prev_state are no longer protected.
_TOP_LEVEL_V11 = _TOP_LEVEL_V1 - {"origin", "membership", "prev_state"}

_POWER_LEVELS_V1 = frozenset(
    {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
)


@dataclass(frozen=True, slots=True)
class _Rules:
    """One room version's redaction algorithm, precomputed."""

    top_level: frozenset[str]
    top_level_signed: frozenset[str]  # top_level minus "signatures" (what signatures cover)
    # event type -> content keys kept; None keeps the whole content (v11+ m.room.create).
    content_keys: Mapping[str, frozenset[str] | None]
    # v11+: m.room.member keeps content.third_party_invite, reduced to its "signed" key.
    keeps_third_party_invite_signed: bool


def _build_rules(room_version: RoomVersion) -> _Rules:
    updated = room_version.updated_redaction_rules
    top_level = _TOP_LEVEL_V11 if updated else _TOP_LEVEL_V1

    member = {"membership"}
    if room_version.redaction_keeps_join_authorised_via:  # v9+
        member.add("join_authorised_via_users_server")
    join_rules = {"join_rule"}
    if room_version.redaction_keeps_join_rules_allow:  # v8+
        join_rules.add("allow")
    power_levels = set(_POWER_LEVELS_V1)
    if updated:  # v11+
        power_levels.add("invite")

    content_keys: dict[str, frozenset[str] | None] = {
        "m.room.member": frozenset(member),
        # v1-v10 keep "creator"; v11+ keep every key of the create event's content.
        "m.room.create": None if updated else frozenset({"creator"}),
        "m.room.join_rules": frozenset(join_rules),
        "m.room.power_levels": frozenset(power_levels),
        "m.room.history_visibility": frozenset({"history_visibility"}),
    }
    if room_version.redaction_keeps_aliases:  # v1-v5
        content_keys["m.room.aliases"] = frozenset({"aliases"})
    if updated:  # v11+: the redacted event's ID moved into content
        content_keys["m.room.redaction"] = frozenset({"redacts"})

    return _Rules(
        top_level=top_level,
        top_level_signed=top_level - {"signatures"},
        content_keys=content_keys,
        keeps_third_party_invite_signed=updated,
    )


# Keyed by id(): hashing a 20-field frozen dataclass on every call costs more than the
# redaction itself. The RoomVersion is stored alongside so its id cannot be reused.
_RULES: dict[int, tuple[RoomVersion, _Rules]] = {}


def _rules_for(room_version: RoomVersion) -> _Rules:
    entry = _RULES.get(id(room_version))
    if entry is None or entry[0] is not room_version:
        entry = (room_version, _build_rules(room_version))
        _RULES[id(room_version)] = entry
    return entry[1]


def redact(event: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The redacted copy of ``event`` under ``room_version``'s redaction algorithm.

    Keys outside the version's list are stripped (``unsigned`` included: a server that shows
    a redacted event to clients adds ``unsigned.redacted_because`` itself), and ``content``
    keeps only the keys its event type allows. Redacting a redacted event changes nothing.
    """
    return _redact(event, room_version, signed_only=False)


def redact_for_signing(event: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The redacted event without ``signatures`` and ``unsigned``.

    This is exactly the object that event signatures and the reference hash cover
    (server-server API, "Adding hashes and signatures to outgoing events", "Calculating the
    reference hash for an event"), built in one pass instead of redact-then-copy.
    """
    return _redact(event, room_version, signed_only=True)


def _redact(
    event: Mapping[str, Any], room_version: RoomVersion, signed_only: bool
) -> dict[str, Any]:
    rules = _rules_for(room_version)
    keep = rules.top_level_signed if signed_only else rules.top_level
    out = {key: value for key, value in event.items() if key in keep}
    if "content" in out:
        out["content"] = _redact_content(event.get("type"), out["content"], rules)
    return out


def _redact_content(event_type: Any, content: Any, rules: _Rules) -> dict[str, Any]:
    """The content keys the event type keeps; a non-object content redacts to ``{}``."""
    if not isinstance(content, dict) or type(event_type) is not str:
        return {}
    if event_type not in rules.content_keys:
        return {}
    keys = rules.content_keys[event_type]
    if keys is None:
        return dict(content)
    kept = {key: value for key, value in content.items() if key in keys}
    if event_type == "m.room.member" and rules.keeps_third_party_invite_signed:
        # v11: "it allows the `signed` key of the `third_party_invite` key" - the object is
        # kept with only that key (empty if it had none); a non-object is dropped.
        invite = content.get("third_party_invite")
        if isinstance(invite, dict):
            kept["third_party_invite"] = {"signed": invite["signed"]} if "signed" in invite else {}
    return kept
