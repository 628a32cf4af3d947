"""Reading power levels and room creators out of the auth state.

Sources: the m.room.power_levels schema (defaults), server-server API "Definitions" (required
power level; invite, kick, ban and redact levels), rooms/fragments/v1-stringy-power-levels.md
(v1-v9 accept integers written as strings), v1-floaty-power-levels.md (v1-v5 accept floats,
truncated; v6 enforces canonical JSON so floats are gone), v10 "Values in m.room.power_levels
events must be integers", and v12 "room creators" with infinitely high power.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import RoomVersion

CREATE: StateKey = ("m.room.create", "")
POWER_LEVELS: StateKey = ("m.room.power_levels", "")
INFINITE = math.inf  # v12: the power level of a room creator

# The integer-valued properties the rules check one by one, and their defaults.
LEVEL_FIELDS: dict[str, int] = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "redact": 50,
    "kick": 50,
    "invite": 0,
}
# v1-stringy-power-levels: optional whitespace, optional single sign, base-10 digits.
_STRINGY = re.compile(r"[ \t\n\r\f\v]*[+-]?[0-9]+[ \t\n\r\f\v]*")


class InvalidLevel(ValueError):
    """A power level value the room version cannot read."""


def parse_level(value: object, version: RoomVersion) -> int:
    """One power level value as an integer, per the room version; InvalidLevel otherwise."""
    if isinstance(value, bool):  # JSON true/false are not numbers
        raise InvalidLevel(f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if not version.integer_power_levels and isinstance(value, str):
        if _STRINGY.fullmatch(value):
            return int(value.strip())
        raise InvalidLevel(f"{value!r} is not an integer written as a string")
    if not version.strict_canonical_json and isinstance(value, float):
        # v1-floaty-power-levels: truncate at the decimal point; Infinity and NaN are invalid.
        if not math.isfinite(value):
            raise InvalidLevel(f"{value!r} is outside the range of a double")
        return math.trunc(value)
    raise InvalidLevel(f"{value!r} is not an integer")


def read_level(value: object, version: RoomVersion) -> int | None:
    """``parse_level``, with None for an unreadable value (it then counts as absent)."""
    try:
        return parse_level(value, version)
    except InvalidLevel:
        return None


def read_level_map(value: object, version: RoomVersion) -> dict[str, int]:
    """An ``events``/``notifications``/``users`` object's readable entries."""
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for key, raw in value.items():
        level = read_level(raw, version)
        if level is not None:
            out[key] = level
    return out


def creators(create: PDU | None) -> frozenset[str]:
    """Room creators. v12: the create event's sender plus content.additional_creators;
    v11: its sender ("implicit room creator"); v1-v10: content.creator."""
    if create is None:
        return frozenset()
    version = create.room_version
    if version.privileged_creators:
        extra = create.content.get("additional_creators")
        listed = [u for u in extra if isinstance(u, str)] if isinstance(extra, list) else []
        return frozenset([create.sender, *listed])
    if version.implicit_room_creator:
        return frozenset([create.sender])
    creator = create.content.get("creator")
    return frozenset([creator]) if isinstance(creator, str) else frozenset()


@dataclass(frozen=True)
class PowerLevels:
    """The effective levels of a room state (its m.room.power_levels plus the defaults)."""

    version: RoomVersion
    content: Mapping[str, Any] | None  # None: the room has no m.room.power_levels event
    room_creators: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_state(cls, state: Mapping[StateKey, PDU], version: RoomVersion) -> PowerLevels:
        event = state.get(POWER_LEVELS)
        return cls(version, event.content if event else None, creators(state.get(CREATE)))

    def level(self, name: str) -> int:
        """users_default, events_default, state_default, ban, redact, kick or invite."""
        if self.content is not None:
            value = read_level(self.content.get(name), self.version)
            if value is not None:
                return value
        return LEVEL_FIELDS[name]

    def user_level(self, user_id: str) -> int | float:
        """A user's power level: ``INFINITE`` for a v12 creator; without an
        m.room.power_levels event, 100 for the creator (v1-v11) and 0 for everyone else."""
        if self.version.privileged_creators and user_id in self.room_creators:
            return INFINITE
        if self.content is None:
            return 100 if user_id in self.room_creators else 0
        users = self.content.get("users")
        if isinstance(users, Mapping) and user_id in users:
            value = read_level(users[user_id], self.version)
            if value is not None:
                return value
        return self.level("users_default")

    def required_level(self, event_type: str, is_state: bool) -> int:
        """Server-server API, "Required Power Level": ``events[type]``, else state_default
        for state events and events_default for the rest."""
        if self.content is not None:
            events = read_level_map(self.content.get("events"), self.version)
            if event_type in events:
                return events[event_type]
        return self.level("state_default" if is_state else "events_default")


def user_power_level(
    user_id: str, state: Mapping[StateKey, PDU], version: RoomVersion
) -> int | float:
    """A user's power level in ``state`` (e.g. an event's auth events, for state resolution's
    "sender has greater power level"); ``INFINITE`` for v12 room creators."""
    return PowerLevels.from_state(state, version).user_level(user_id)
