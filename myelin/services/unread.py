"""Unread notification counts for /sync (client-server API, "Receiving notifications":
``unread_notifications``), from the user's push rules and read receipt.

Counted when a sync asks, over the events after the user's latest read receipt (or their
join), newest first and at most ``MAX_COUNTED`` of them: clients show "99+" beyond that, and
the cost of a sync stays bounded however long a room went unread.
"""

from __future__ import annotations

from myelin.core.push_rules import (
    evaluate_for_user,
    notifies,
    tweaks,
)
from myelin.services.push_inputs import room_push_inputs
from myelin.services.push_rules import PushRuleService
from myelin.services.receipts import ReceiptService
from myelin.services.rooms.client_format import client_event
from myelin.services.rooms.timeline import Timeline
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.state import StateStore

MAX_COUNTED = 200


class UnreadCounter:
    def __init__(self, events: EventStore, state: StateStore, timeline: Timeline,
                 receipts: ReceiptService, push_rules: PushRuleService) -> None:
        self._events = events
        self._state = state
        self._timeline = timeline
        self._receipts = receipts
        self._push_rules = push_rules

    async def counts(self, user_id: str, room_id: str, upto: int) -> tuple[int, int]:
        """(notification_count, highlight_count) for the user in the room."""
        after = await self._read_up_to(user_id, room_id)
        if after is None or after >= upto:
            return 0, 0
        unread = await self._events.get_room_events_by_stream(room_id, after, upto,
                                                              MAX_COUNTED)
        unread = [e for e in unread if e.pdu.sender != user_id]
        if not unread:
            return 0, 0
        room = await self._timeline.room(room_id)
        if room is None:
            return 0, 0
        ruleset = await self._push_rules.ruleset(user_id)
        inputs = await room_push_inputs(self._timeline, room, [user_id],
                                        await self._state.count_joined(room_id))
        notifications = highlights = 0
        for stored in unread:
            actions = evaluate_for_user(ruleset, client_event(stored.pdu),
                                        inputs.context(user_id, stored.pdu.sender))
            if notifies(actions):
                notifications += 1
                if tweaks(actions).get("highlight"):
                    highlights += 1
        return notifications, highlights

    async def _read_up_to(self, user_id: str, room_id: str) -> int | None:
        """The stream position the user has read up to: their receipt, else their join."""
        event_id = await self._receipts.latest_read(room_id, user_id)
        if event_id is not None:
            stored = (await self._events.get_events([event_id])).get(event_id)
            if stored is not None:
                return stored.stream_ordering
        membership = await self._state.get_membership(room_id, user_id)
        if membership is None:
            return None
        stored = (await self._events.get_events([membership[1]])).get(membership[1])
        return stored.stream_ordering if stored is not None else None
