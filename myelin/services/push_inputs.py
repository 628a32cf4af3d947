"""What push-rule evaluation needs to know about a room, gathered once per room and event.

Shared by the unread counts of /sync and by push delivery, so both judge an event the same
way: the room's member count, the power levels (sender level and notification levels) and each
recipient's display name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from myelin.core.auth import PowerLevels
from myelin.core.events import PDU, StateKey
from myelin.core.push_rules import PushContext, notification_levels
from myelin.services.rooms.timeline import CREATE, RoomState, Timeline

POWER_LEVELS: StateKey = ("m.room.power_levels", "")


@dataclass(frozen=True)
class RoomPushInputs:
    member_count: int
    power_levels: PowerLevels
    notify_levels: Mapping[str, int]
    state: Mapping[StateKey, PDU]

    def context(self, user_id: str, sender: str) -> PushContext:
        member = self.state.get(("m.room.member", user_id))
        name = member.content.get("displayname") if member is not None else None
        return PushContext(user_id, self.member_count,
                           display_name=name if isinstance(name, str) else None,
                           sender_power_level=self.power_levels.user_level(sender),
                           notification_levels=self.notify_levels)


async def room_push_inputs(timeline: Timeline, room: RoomState, recipients: Iterable[str],
                           member_count: int) -> RoomPushInputs:
    keys = [CREATE, POWER_LEVELS, *(("m.room.member", u) for u in recipients)]
    state = await timeline.state_events(room, keys)
    power = state.get(POWER_LEVELS)
    return RoomPushInputs(member_count, PowerLevels.from_state(state, room.room_version),
                          notification_levels(power.content if power is not None else None),
                          state)
