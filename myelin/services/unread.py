"""Unread notification counts for /sync (client-server API, "Receiving notifications":
``unread_notifications``, and "Threaded read receipts": ``unread_thread_notifications``).

An event counts for a user if their push rules notified them of it and it is after their
latest read receipt (or their join). Push evaluation (``PushDelivery``) already decides that
once per event and recipient and records each notifying result in ``notifications``, so a sync
reads those rows; only events too new to have been evaluated yet (usually the one that woke the
sync) are evaluated here, so counts are never behind the timeline. Evaluating every unread
event again per sync cost a long-polling receiver of a busy room ~1 ms per sync per 50 unread
events. At most ``MAX_COUNTED`` notifications are counted: clients show "99+" beyond that, and
a sync's cost stays bounded however long a room went unread. Notifications older than the
retention of ``notifications`` (30 days) no longer count.

A long-polling client syncs again after every new event while its read receipt stays put, so
the main-timeline counts of each (user, room) are kept with the read position and stream
position they were counted for (``_Tally``); the next sync with the same read position only
counts what came after. Re-reading up to 200 ``notifications`` rows per woken sync was ~4% of
a sync-fanout load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from myelin.core.push_rules import evaluate_for_user, notifies, tweaks
from myelin.services.push_inputs import room_push_inputs
from myelin.services.push_rules import PushRuleService
from myelin.services.receipts import ReceiptService
from myelin.services.rooms.client_format import client_event
from myelin.services.rooms.membership_cache import JoinedMembers
from myelin.services.rooms.timeline import Timeline
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.notifications import NotificationStore
from myelin.storage.stores.relations import thread_root

MAX_COUNTED = 200
Counts = tuple[int, int]  # (notification_count, highlight_count)
MAIN = ""  # the main timeline's key, as receipts name it
_MAX_CACHED_POSITIONS = 100_000
_MAX_TALLIES = 50_000
_TALLY_TTL_S = 600.0  # counted again from the table now and then (retention, rule changes)


@dataclass(frozen=True, slots=True)
class _Tally:
    """A (user, room)'s main-timeline counts after read position ``after`` up to ``upto``."""
    after: int
    upto: int
    counts: Counts
    counted_at: float  # time.monotonic()


class UnreadCounter:
    def __init__(self, events: EventStore, joined_members: JoinedMembers, timeline: Timeline,
                 receipts: ReceiptService, push_rules: PushRuleService,
                 notifications: NotificationStore,
                 evaluated_upto: Callable[[], int | None]) -> None:
        """``evaluated_upto``: the position up to which every event's notifications are
        recorded (``PushDelivery.evaluated_upto``); None: evaluate everything here."""
        self._events = events
        self._joined_members = joined_members
        self._timeline = timeline
        self._receipts = receipts
        self._push_rules = push_rules
        self._notifications = notifications
        self._evaluated_upto = evaluated_upto
        # Stream positions of read-receipt targets (a timeline event's never changes).
        self._positions: dict[str, int] = {}
        self._tallies: dict[tuple[str, str], _Tally] = {}

    async def counts(self, user_id: str, room_id: str, upto: int, threaded: bool = False, *,
                     joined_at: int) -> tuple[Counts, dict[str, Counts]]:
        """Unread (notification, highlight) counts of the room, and with ``threaded`` (the
        filter's ``unread_thread_notifications``) the main timeline's counts plus one pair
        per thread root, each counted after that thread's receipt. ``joined_at``: the stream
        position of the user's join (the sync has it in the user's membership list)."""
        after = await self._position_of_read(user_id, room_id, MAIN)
        if after is None:
            after = joined_at
        if after >= upto:
            return (0, 0), {}
        if not threaded:
            return await self._main_counts(user_id, room_id, after, upto), {}
        found = await self._found(user_id, room_id, after, upto, threaded)
        read_upto = {MAIN: after}
        totals: dict[str, list[int]] = {}
        for position, highlight, key in found:
            if key not in read_upto:
                read_upto[key] = await self._position_of_read(user_id, room_id, key) or after
            if position <= read_upto[key]:
                continue
            counts = totals.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += highlight
        main = totals.pop(MAIN, [0, 0])
        return (main[0], main[1]), {root: (n, h) for root, (n, h) in totals.items()}

    async def _main_counts(self, user_id: str, room_id: str, after: int, upto: int) -> Counts:
        """Counts of (after, upto]: the last tally for this read position plus what came
        since, when there is one (and the sum stays within ``MAX_COUNTED``, beyond which only
        the newest count), else counted afresh."""
        key = (user_id, room_id)
        tally = self._tallies.get(key)
        now = time.monotonic()
        if (tally is not None and tally.after == after and tally.upto <= upto
                and now - tally.counted_at < _TALLY_TTL_S):
            if tally.upto == upto:
                return tally.counts
            found = await self._found(user_id, room_id, tally.upto, upto, False)
            notified = tally.counts[0] + len(found)
            if notified <= MAX_COUNTED:
                counts = (notified, tally.counts[1] + sum(high for _, high, _ in found))
                self._remember(key, _Tally(after, upto, counts, tally.counted_at))
                return counts
        found = await self._found(user_id, room_id, after, upto, False)
        counts = (len(found), sum(high for _, high, _ in found))
        self._remember(key, _Tally(after, upto, counts, now))
        return counts

    def _remember(self, key: tuple[str, str], tally: _Tally) -> None:
        if len(self._tallies) >= _MAX_TALLIES and key not in self._tallies:
            self._tallies.clear()
        self._tallies[key] = tally

    async def _found(self, user_id: str, room_id: str, after: int, upto: int,
                     threaded: bool) -> list[tuple[int, bool, str]]:
        """(position, highlight, thread or MAIN) of the user's notifying events in (after,
        upto], newest first, at most ``MAX_COUNTED``: recorded ones from the table, the rest
        evaluated here."""
        evaluated = self._evaluated_upto()
        recorded_upto = after if evaluated is None else max(after, min(evaluated, upto))
        found = await self._evaluate(user_id, room_id, recorded_upto, upto, threaded)
        if recorded_upto > after and len(found) < MAX_COUNTED:
            rows = await self._notifications.in_room(user_id, room_id, after, recorded_upto,
                                                     MAX_COUNTED - len(found))
            found += [(pos, high, (thread or MAIN) if threaded else MAIN)
                      for pos, high, thread in rows]
        return found

    async def _evaluate(self, user_id: str, room_id: str, after: int, upto: int,
                        threaded: bool) -> list[tuple[int, bool, str]]:
        """Push rules applied here to the events in (after, upto] not evaluated yet."""
        if after >= upto:
            return []
        unread = await self._events.get_room_events_by_stream(room_id, after, upto,
                                                              MAX_COUNTED)
        unread = [e for e in unread if e.pdu.sender != user_id]
        room = await self._timeline.room(room_id) if unread else None
        if room is None:
            return []
        ruleset = await self._push_rules.ruleset(user_id)
        inputs = await room_push_inputs(self._timeline, room, [user_id],
                                        len(await self._joined_members.get(room_id)))
        found = []
        for stored in unread:
            actions = evaluate_for_user(ruleset, client_event(stored.pdu),
                                        inputs.context(user_id, stored.pdu.sender))
            if notifies(actions):
                thread = thread_root(stored.pdu.content) if threaded else None
                found.append((stored.stream_ordering, bool(tweaks(actions).get("highlight")),
                              thread or MAIN))
        found.sort(reverse=True)
        return found

    async def _position_of_read(self, user_id: str, room_id: str, thread: str) -> int | None:
        event_id = await self._receipts.latest_read(room_id, user_id, thread)
        if event_id is None:
            return None
        position = self._positions.get(event_id)
        if position is None:
            stored = (await self._events.get_events([event_id])).get(event_id)
            if stored is None:
                return None
            position = stored.stream_ordering
            if not stored.outlier:  # an outlier's position changes if it joins the timeline
                if len(self._positions) >= _MAX_CACHED_POSITIONS:
                    self._positions.clear()
                self._positions[event_id] = position
        return position
