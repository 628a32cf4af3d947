"""Unread notification counts for /sync (client-server API, "Receiving notifications":
``unread_notifications``), from the user's push rules and read receipt.

Counted when a sync asks, over the events after the user's latest read receipt (or their
join), newest first and at most ``MAX_COUNTED`` of them: clients show "99+" beyond that, and
the cost of a sync stays bounded however long a room went unread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
Counts = tuple[int, int]  # (notification_count, highlight_count)


class UnreadCounter:
    def __init__(self, events: EventStore, state: StateStore, timeline: Timeline,
                 receipts: ReceiptService, push_rules: PushRuleService) -> None:
        self._events = events
        self._state = state
        self._timeline = timeline
        self._receipts = receipts
        self._push_rules = push_rules

    async def counts(self, user_id: str, room_id: str, upto: int,
                     threaded: bool = False) -> tuple[Counts, dict[str, Counts]]:
        """Unread (notification, highlight) counts of the room, and with ``threaded`` (the
        filter's ``unread_thread_notifications``) the main timeline's counts plus one pair
        per thread root, each counted after that thread's receipt ("Threaded read receipts")."""
        after = await self._position_of_read(user_id, room_id, "")
        if after is None:
            after = await self._join_position(user_id, room_id)
        if after is None or after >= upto:
            return (0, 0), {}
        unread = await self._events.get_room_events_by_stream(room_id, after, upto,
                                                              MAX_COUNTED)
        unread = [e for e in unread if e.pdu.sender != user_id]
        room = await self._timeline.room(room_id) if unread else None
        if room is None:
            return (0, 0), {}
        ruleset = await self._push_rules.ruleset(user_id)
        inputs = await room_push_inputs(self._timeline, room, [user_id],
                                        await self._state.count_joined(room_id))
        read_upto: dict[str, int] = {}
        totals: dict[str, list[int]] = {}
        for stored in unread:
            thread = _thread_root(stored.pdu.content) if threaded else None
            key = thread or "main"
            if threaded and key not in read_upto:
                read_upto[key] = await self._position_of_read(user_id, room_id, key) or after
            if threaded and stored.stream_ordering <= read_upto[key]:
                continue
            actions = evaluate_for_user(ruleset, client_event(stored.pdu),
                                        inputs.context(user_id, stored.pdu.sender))
            if notifies(actions):
                counts = totals.setdefault(key, [0, 0])
                counts[0] += 1
                if tweaks(actions).get("highlight"):
                    counts[1] += 1
        main = totals.pop("main", [0, 0])
        return (main[0], main[1]), {root: (n, h) for root, (n, h) in totals.items()}

    async def _position_of_read(self, user_id: str, room_id: str, thread: str) -> int | None:
        event_id = await self._receipts.latest_read(room_id, user_id, thread)
        if event_id is None:
            return None
        stored = (await self._events.get_events([event_id])).get(event_id)
        return stored.stream_ordering if stored is not None else None

    async def _join_position(self, user_id: str, room_id: str) -> int | None:
        membership = await self._state.get_membership(room_id, user_id)
        if membership is None:
            return None
        stored = (await self._events.get_events([membership[1]])).get(membership[1])
        return stored.stream_ordering if stored is not None else None


def _thread_root(content: Mapping[str, Any]) -> str | None:
    relation = content.get("m.relates_to")
    if isinstance(relation, dict) and relation.get("rel_type") == "m.thread":
        root = relation.get("event_id")
        return root if isinstance(root, str) else None
    return None
