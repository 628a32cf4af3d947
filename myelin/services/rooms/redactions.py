"""Redacting events on behalf of local users (client-server API, "Redactions").

The auth rules and "Handling redactions" would let any user of this server redact any other
local user's event (their domains match); clients are held to the stricter rule Synapse applies:
redacting someone else's event needs the room's redact power level.
"""

from __future__ import annotations

from typing import Any

from myelin.core.auth import PowerLevels, user_power_level
from myelin.core.events import PDU
from myelin.errors import MatrixError, forbidden, not_found
from myelin.services.rooms.timeline import CREATE, Timeline
from myelin.storage.stores.events import EventStore

POWER_LEVELS = ("m.room.power_levels", "")


class RedactionService:
    def __init__(self, timeline: Timeline, events: EventStore) -> None:
        self._timeline = timeline
        self._events = events

    async def redact(self, user_id: str, room_id: str, event_id: str, reason: str | None,
                     client_txn: tuple[str, str, str, str] | None) -> PDU:
        original = (await self._events.get_events([event_id])).get(event_id)
        if original is None:
            raise not_found("Event not found")
        if original.pdu.room_id != room_id:
            raise MatrixError(400, "M_INVALID_PARAM", "Cannot redact an event of another room")
        if original.pdu.sender != user_id:
            room = await self._timeline.room(room_id)
            if room is None:
                raise forbidden("You are not in this room")
            state = await self._timeline.state_events(room, [CREATE, POWER_LEVELS])
            version = room.room_version
            needed = PowerLevels.from_state(state, version).level("redact")
            if user_power_level(user_id, state, version) < needed:
                raise forbidden("You don't have permission to redact other users' events")
        content: dict[str, Any] = {}
        if reason is not None:
            content["reason"] = reason
        return await self._timeline.append(room_id, user_id, "m.room.redaction", content,
                                           redacts=event_id, client_txn=client_txn)
