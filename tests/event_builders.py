"""Building PDUs for core tests without hashing or signing them.

Tests of auth rules and state resolution care about who sent what, in which state; these
builders give every event a readable explicit ID ("$create", "$alice-join") so failures read
like the scenario, whatever the room version's real event-ID format is.
"""

from __future__ import annotations

import itertools
from typing import Any

from myelin.core.events import PDU
from myelin.core.room_versions import RoomVersion

ROOM_ID = "!room:example.org"
_clock = itertools.count(1)


def make_event(
    room_version: RoomVersion,
    event_id: str,
    type: str,
    sender: str,
    content: dict[str, Any] | None = None,
    *,
    state_key: str | None = None,
    prev_events: list[str] | None = None,
    auth_events: list[str] | None = None,
    depth: int | None = None,
    origin_server_ts: int | None = None,
    room_id: str = ROOM_ID,
    **extra: Any,
) -> PDU:
    """A PDU with an explicit ``event_id``; ``extra`` adds or overrides top-level fields."""
    ts = origin_server_ts if origin_server_ts is not None else next(_clock)
    data: dict[str, Any] = {
        "type": type,
        "sender": sender,
        "content": content if content is not None else {},
        "room_id": room_id,
        "origin_server_ts": ts,
        "depth": depth if depth is not None else ts,
        "prev_events": list(prev_events or []),
        "auth_events": list(auth_events or []),
        "hashes": {"sha256": "unchecked"},
        "signatures": {},
    }
    if state_key is not None:
        data["state_key"] = state_key
    data.update(extra)
    return PDU(data, room_version, event_id=event_id)
