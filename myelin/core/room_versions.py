"""Room versions as data (spec: "Room Versions", rooms/v1.md ... rooms/v12.md).

Each version is one frozen ``RoomVersion`` whose flags name a *behaviour* ("knocking",
"integer_power_levels"), never a version number, and each version is written as a delta of
the one before it, so reading the list below is reading the spec's changelog of room versions.
Code asks ``room_version.knocking``, never ``room_version.identifier in ("7", "8", ...)``.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass


class EventIdFormat(enum.Enum):
    SERVER_GENERATED = "server_generated"  # v1-v2: "$opaque:origin", carried in the event
    REFERENCE_HASH_BASE64 = "reference_hash_base64"  # v3: "$" + standard unpadded base64
    REFERENCE_HASH_URLSAFE = "reference_hash_urlsafe"  # v4+: "$" + URL-safe unpadded base64


class StateResolution(enum.Enum):
    V1 = "v1"  # room version 1
    V2 = "v2"  # room versions 2-11
    V2_1 = "v2.1"  # room version 12: empty starting state, conflicted state subgraph


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    stable: bool = True

    # -- event format --
    event_id_format: EventIdFormat = EventIdFormat.SERVER_GENERATED
    # v12: the room ID is "!" + the create event's reference hash; the create event has no
    # room_id of its own.
    room_id_from_create_event: bool = False

    # -- algorithms --
    state_resolution: StateResolution = StateResolution.V1
    # v5: a signature only counts if its key was valid at the event's origin_server_ts.
    enforce_key_validity: bool = False
    # v6: events are rejected if they hold floats or integers outside +-(2**53 - 1).
    strict_canonical_json: bool = False

    # -- authorization rules --
    # v1-v5: m.room.aliases events are authorised by state_key == sender's domain only.
    special_case_aliases_auth: bool = True
    # v1-v2: auth rule 11 authorises m.room.redaction by redact level or event-ID domain; from
    # v3 redactions pass the rules like any event and are checked at "Handling redactions".
    redaction_auth_rule: bool = True
    # v6: the "notifications" keys of m.room.power_levels are covered by power checks.
    limit_notifications_power_levels: bool = False
    # v7: membership "knock" and join rule "knock".
    knocking: bool = False
    # v8: join rule "restricted" with join_authorised_via_users_server.
    restricted_join_rule: bool = False
    # v10: join rule "knock_restricted".
    knock_restricted_join_rule: bool = False
    # v10: power-level values must be JSON integers (v1-v9 also accept strings and floats).
    integer_power_levels: bool = False
    # v11: m.room.create has no "creator"; the creator is the create event's sender.
    implicit_room_creator: bool = False
    # v12: creators (create sender + content.additional_creators) have infinite power and may
    # not appear in m.room.power_levels.
    privileged_creators: bool = False

    # -- redaction algorithm variants --
    # v1-v5: redaction keeps content.aliases of m.room.aliases.
    redaction_keeps_aliases: bool = True
    # v8: redaction keeps content.allow of m.room.join_rules (rooms/v8.md, "Redactions").
    redaction_keeps_join_rules_allow: bool = False
    # v9: redaction keeps content.join_authorised_via_users_server of m.room.member.
    redaction_keeps_join_authorised_via: bool = False
    # v11: "updated redaction rules" (create keeps all content, power_levels keeps invite,
    # redaction keeps content.redacts, top-level origin/membership/prev_state dropped).
    updated_redaction_rules: bool = False
    # v11: m.room.redaction carries "redacts" in its content rather than at the top level.
    redacts_in_content: bool = False

    def evolve(self, identifier: str, **changes: object) -> RoomVersion:
        """The next version: this one with ``changes`` applied."""
        return dataclasses.replace(self, identifier=identifier, **changes)  # type: ignore[arg-type]


V1 = RoomVersion("1")
V2 = V1.evolve("2", state_resolution=StateResolution.V2)
V3 = V2.evolve(
    "3", event_id_format=EventIdFormat.REFERENCE_HASH_BASE64, redaction_auth_rule=False
)
V4 = V3.evolve("4", event_id_format=EventIdFormat.REFERENCE_HASH_URLSAFE)
V5 = V4.evolve("5", enforce_key_validity=True)
V6 = V5.evolve(
    "6",
    special_case_aliases_auth=False,
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
    redaction_keeps_aliases=False,
)
V7 = V6.evolve("7", knocking=True)
V8 = V7.evolve("8", restricted_join_rule=True, redaction_keeps_join_rules_allow=True)
V9 = V8.evolve("9", redaction_keeps_join_authorised_via=True)
V10 = V9.evolve("10", knock_restricted_join_rule=True, integer_power_levels=True)
V11 = V10.evolve(
    "11", implicit_room_creator=True, updated_redaction_rules=True, redacts_in_content=True
)
V12 = V11.evolve(
    "12",
    room_id_from_create_event=True,
    state_resolution=StateResolution.V2_1,
    privileged_creators=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12)
}

# "Servers SHOULD use room version 12 as the default room version when creating new rooms."
DEFAULT_ROOM_VERSION = V12
