"""PDUs: a typed, read-only view over an event exactly as it was received.

Server-server API, "PDUs", and the room versions' "Event format" sections. The original dict is
kept untouched (unknown fields included) because hashes and signatures cover exactly what the
sending server produced; the properties below only read it. Code that needs a changed event
builds a new dict and a new PDU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from myelin.core.hashing import event_id_from_reference_hash, reference_hash
from myelin.core.room_versions import EventIdFormat, RoomVersion

StateKey = tuple[str, str]  # (event type, state key)


class PDU:
    """One event of a room. ``event_id`` is derived per the room version's event-ID format."""

    __slots__ = ("_event_id", "data", "room_version")

    def __init__(
        self, data: dict[str, Any], room_version: RoomVersion, event_id: str | None = None
    ) -> None:
        self.data = data
        self.room_version = room_version
        self._event_id = event_id

    # -- identity --

    @property
    def event_id(self) -> str:
        if self._event_id is None:
            self._event_id = compute_event_id(self.data, self.room_version)
        return self._event_id

    # -- top-level fields (absent fields read as empty, never raise: format checks do that) --

    @property
    def type(self) -> str:
        return self.data.get("type", "")  # type: ignore[no-any-return]

    @property
    def state_key(self) -> str | None:
        return self.data.get("state_key")

    @property
    def is_state(self) -> bool:
        return "state_key" in self.data

    @property
    def state_tuple(self) -> StateKey:
        """(type, state_key); only meaningful for state events."""
        return (self.type, self.data.get("state_key", ""))

    @property
    def sender(self) -> str:
        return self.data.get("sender", "")  # type: ignore[no-any-return]

    @property
    def room_id(self) -> str:
        """The room ID; for a v12 create event (which has none) it is derived from the event."""
        room_id = self.data.get("room_id")
        if room_id is None and self.room_version.room_id_from_create_event \
                and self.type == "m.room.create":
            return "!" + self.event_id[1:]
        return room_id if isinstance(room_id, str) else ""

    @property
    def content(self) -> Mapping[str, Any]:
        content = self.data.get("content")
        return content if isinstance(content, dict) else {}

    @property
    def depth(self) -> int:
        return self.data.get("depth", 0)  # type: ignore[no-any-return]

    @property
    def origin_server_ts(self) -> int:
        return self.data.get("origin_server_ts", 0)  # type: ignore[no-any-return]

    @property
    def prev_event_ids(self) -> list[str]:
        return _event_refs(self.data.get("prev_events"))

    @property
    def auth_event_ids(self) -> list[str]:
        return _event_refs(self.data.get("auth_events"))

    @property
    def redacts(self) -> str | None:
        """The event this redaction redacts: content.redacts from v11, top level before."""
        if self.room_version.redacts_in_content:
            value = self.content.get("redacts")
        else:
            value = self.data.get("redacts")
        return value if isinstance(value, str) else None

    @property
    def membership(self) -> str | None:
        value = self.content.get("membership")
        return value if isinstance(value, str) else None

    @property
    def signatures(self) -> Mapping[str, Mapping[str, str]]:
        return self.data.get("signatures") or {}

    @property
    def hashes(self) -> Mapping[str, str]:
        return self.data.get("hashes") or {}

    @property
    def unsigned(self) -> Mapping[str, Any]:
        return self.data.get("unsigned") or {}

    def __repr__(self) -> str:
        key = f" {self.state_key!r}" if self.is_state else ""
        return f"<PDU {self._event_id or '?'} {self.type}{key} from {self.sender}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PDU) and self.event_id == other.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)


def _event_refs(value: Any) -> list[str]:
    """v1-v2 reference events as [event_id, {hashes}] pairs, v3+ as bare IDs."""
    if not isinstance(value, list):
        return []
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list) and item and isinstance(item[0], str):
            out.append(item[0])
    return out


def compute_event_id(data: Mapping[str, Any], room_version: RoomVersion) -> str:
    """Room versions' "Event IDs": carried in the event (v1-v2) or its reference hash (v3+)."""
    if room_version.event_id_format is EventIdFormat.SERVER_GENERATED:
        event_id = data.get("event_id")
        if not isinstance(event_id, str):
            raise ValueError("events of this room version carry their own event_id")
        return event_id
    return event_id_from_reference_hash(reference_hash(data, room_version), room_version)
