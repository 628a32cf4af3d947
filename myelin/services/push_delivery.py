"""Push evaluation and delivery (client-server API, "Push Notifications: Server behaviour";
push gateway API, "Homeserver behaviour").

Every event the timeline persists is queued (:meth:`PushDelivery.on_persisted` never blocks
the writer) and evaluated in the background by ``push.concurrency`` tasks, each taking what has
queued up as one batch (one write of its notifications), against the push rules of each local
member of its room except the sender (plus a local invitee, whom ``.m.rule.invite_for_me`` is
for). Each notifying result becomes a row of the ``notifications`` table, which serves
``GET /notifications`` and is also the pushers' durable queue: one task per HTTP pusher with
work sends the user's notifications after the pusher's ``last_stream_ordering`` in order,
retrying a failing gateway with exponential backoff up to ``push.max_attempts`` times before
giving up on that notification, and records its progress, so a restart resumes where it
stopped. A gateway's ``rejected`` pushkeys delete the pusher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

import aiohttp
import orjson

from myelin.config import PushConfig
from myelin.core.events import PDU, StateKey
from myelin.core.push_rules import EventEvaluation, tweaks
from myelin.services.push_inputs import room_push_inputs
from myelin.services.push_rules import PushRuleService
from myelin.services.rooms.client_format import client_event
from myelin.services.rooms.membership_cache import JoinedMembers
from myelin.services.rooms.timeline import Timeline
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.notifications import Notification, NotificationStore
from myelin.storage.stores.pushers import Pusher, PusherStore
from myelin.storage.stores.relations import thread_root

log = logging.getLogger(__name__)

HTTP = "http"
EVENT_ID_ONLY = "event_id_only"
POWER_LEVELS: StateKey = ("m.room.power_levels", "")
ROOM_NAME: StateKey = ("m.room.name", "")
CANONICAL_ALIAS: StateKey = ("m.room.canonical_alias", "")
QUEUE_LIMIT = 10_000  # events waiting for evaluation; beyond it new ones are dropped (logged)
EVALUATION_BATCH = 100  # queued events one evaluation task takes at a time
BATCH = 50  # notifications a pusher reads at a time
STALE_MS = 24 * 3600 * 1000  # older notifications are not pushed any more (as Synapse)
RETENTION_MS = 30 * 24 * 3600 * 1000  # notifications are kept this long for /notifications
PRUNE_INTERVAL_S = 3600.0
DRAIN_TIMEOUT_S = 2.0  # at shutdown, how long queued events may still be evaluated
WAIT_EVALUATION_S = 0.02  # first pause of a pusher waiting for earlier events' evaluation

PusherKey = tuple[str, str, str]  # (user_id, app_id, pushkey)


def now_ms() -> int:
    return int(time.time() * 1000)


def priority(pdu: PDU, event_tweaks: Mapping[str, Any]) -> str:
    """``high`` when the notification may alert (sound or highlight) or its effect is unknown
    (encrypted), else ``low`` (what Synapse sends)."""
    alerts = event_tweaks.get("highlight") or event_tweaks.get("sound")
    return "high" if alerts or pdu.type == "m.room.encrypted" else "low"


def notify_body(pusher: Pusher, pdu: PDU, actions: list[Any], unread: int, *,
                include_content: bool = True, sender_display_name: str | None = None,
                room_name: str | None = None, room_alias: str | None = None) -> dict[str, Any]:
    """The ``POST /_matrix/push/v1/notify`` body telling ``pusher`` about ``pdu``."""
    device: dict[str, Any] = {
        "app_id": pusher.app_id, "pushkey": pusher.pushkey,
        "pushkey_ts": pusher.pushkey_ts // 1000,
        "data": {k: v for k, v in pusher.data.items() if k != "url"},
    }
    counts = {"unread": unread} if unread > 0 else {}  # zero counts "should be omitted"
    if pusher.data.get("format") == EVENT_ID_ONLY:
        # The client fetches the event and applies the rules itself: no tweaks, no prio.
        return {"notification": {"event_id": pdu.event_id, "room_id": pdu.room_id,
                                 "counts": counts, "devices": [device]}}
    event_tweaks = tweaks(actions)
    if event_tweaks:
        device["tweaks"] = event_tweaks
    notification: dict[str, Any] = {
        "event_id": pdu.event_id, "room_id": pdu.room_id, "type": pdu.type,
        "sender": pdu.sender, "prio": priority(pdu, event_tweaks), "counts": counts,
    }
    if include_content and pdu.content:
        notification["content"] = dict(pdu.content)
    if pdu.type == "m.room.member" and pdu.is_state:
        notification["membership"] = pdu.membership  # not in the spec; Sygnal reads it
        notification["user_is_target"] = pdu.state_key == pusher.user_id
    if sender_display_name:
        notification["sender_display_name"] = sender_display_name
    if room_name:
        notification["room_name"] = room_name
    if room_alias:
        notification["room_alias"] = room_alias
    notification["devices"] = [device]
    return {"notification": notification}


def _text(pdu: PDU | None, key: str) -> str | None:
    value = pdu.content.get(key) if pdu is not None else None
    return value if isinstance(value, str) and value else None


class PushDelivery:
    def __init__(self, config: PushConfig, server_name: str, timeline: Timeline,
                 joined_members: JoinedMembers, push_rules: PushRuleService, pushers: PusherStore,
                 notifications: NotificationStore, events: EventStore) -> None:
        self._config = config
        self._server_name = server_name
        self._timeline = timeline
        self._joined_members = joined_members
        self._push_rules = push_rules
        self._pushers = pushers
        self._notifications = notifications
        self._events = events
        self._queue: asyncio.Queue[tuple[PDU, int]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[int] = set()  # stream positions queued or being evaluated
        self._wakes: dict[PusherKey, asyncio.Event] = {}
        self._wanted: dict[PusherKey, int] = {}  # newest notification a pusher was woken for
        self._pusher_tasks: dict[PusherKey, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._requests = asyncio.Semaphore(config.max_requests)

    # -- lifecycle --

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._tasks = [asyncio.create_task(self._evaluate_loop(self._queue))
                       for _ in range(self._config.concurrency)]
        self._tasks.append(asyncio.create_task(self._prune_loop()))
        if self._config.enabled:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.request_timeout_s))
            for pusher in await self._pushers.list_of_kind(HTTP):  # resume after a restart
                self._wake(pusher.key, -1)

    async def flush(self) -> None:
        """Wait until every event queued so far has been evaluated."""
        if self._queue is not None:
            await self._queue.join()

    async def stop(self) -> None:
        """Evaluate what is queued (briefly), then stop; unsent pushes resume at next start."""
        try:
            await asyncio.wait_for(self.flush(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning("push: events left unevaluated at shutdown")
        self._queue = None
        tasks = [*self._tasks, *self._pusher_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._pusher_tasks.clear()
        self._wakes.clear()
        self._wanted.clear()
        self._pending.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- evaluation --

    def on_persisted(self, pdu: PDU, stream_ordering: int) -> None:
        """The timeline's hook: queue the event, never wait."""
        if self._queue is None:
            return
        try:
            self._queue.put_nowait((pdu, stream_ordering))
        except asyncio.QueueFull:
            log.warning("push: evaluation queue full, no notifications for %s", pdu.event_id)
            return
        self._pending.add(stream_ordering)

    def evaluated_upto(self) -> int | None:
        """Every event up to this position has its notifications recorded (None while
        evaluation is not running: nothing can be relied on)."""
        return None if self._queue is None else self._evaluated_upto()

    def _evaluated_upto(self) -> int:
        """Every event up to this stream position is persisted and evaluated, so a pusher may
        move past it: events persist, and so are evaluated, out of stream order."""
        upto = self._timeline.stream.current
        return min(upto, min(self._pending) - 1) if self._pending else upto

    async def _evaluate_loop(self, queue: asyncio.Queue[tuple[PDU, int]]) -> None:
        while True:
            # What queued up while the last batch was evaluated goes in one batch: one
            # notifications write and one pusher lookup for many events, not one per event.
            batch = [await queue.get()]
            while len(batch) < EVALUATION_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            found: list[Notification] = []
            try:
                found = await self.evaluate_batch(batch)
            except Exception:
                log.exception("push: recording the notifications of %d events failed",
                              len(batch))
            finally:
                for _, stream_ordering in batch:
                    self._pending.discard(stream_ordering)
                    queue.task_done()
            if found and self._config.enabled and self._session is not None:
                try:
                    newest: dict[str, int] = {}
                    for n in found:
                        newest[n.user_id] = max(n.stream_ordering, newest.get(n.user_id, 0))
                    for pusher in await self._pushers.list_of_kind(HTTP, list(newest)):
                        self._wake(pusher.key, newest[pusher.user_id])
                except Exception:
                    log.exception("push: waking the pushers for %d events failed", len(batch))

    def _is_local(self, user_id: str) -> bool:
        return user_id.partition(":")[2] == self._server_name

    async def evaluate_batch(self, batch: list[tuple[PDU, int]]) -> list[Notification]:
        """Evaluate each (event, stream position) for its local recipients and record what
        notifies, in one write; an event that fails to evaluate is logged and skipped."""
        found: list[Notification] = []
        for pdu, stream_ordering in batch:
            try:
                found.extend(await self._evaluate(pdu, stream_ordering))
            except Exception:
                log.exception("push: evaluating %s failed", pdu.event_id)
        await self._notifications.add(found)
        return found

    async def _evaluate(self, pdu: PDU, stream_ordering: int) -> list[Notification]:
        room = await self._timeline.room(pdu.room_id)
        if room is None:
            return []
        joined = await self._joined_members.get(pdu.room_id)
        recipients = [u for u in await self._joined_members.local(pdu.room_id)
                      if u != pdu.sender]
        invitee = pdu.state_key if pdu.membership == "invite" else None
        if (pdu.type == "m.room.member" and invitee and invitee != pdu.sender
                and invitee not in recipients and self._is_local(invitee)):
            recipients.append(invitee)
        if not recipients:
            return []
        rulesets = [await self._push_rules.ruleset(user_id) for user_id in recipients]
        # Display names (membership events) are read only for the users whose rules use them.
        named = [u for u, r in zip(recipients, rulesets, strict=True) if r.uses_display_name]
        inputs = await room_push_inputs(self._timeline, room, named, len(joined))
        evaluation = EventEvaluation(client_event(pdu))
        found = []
        ts = now_ms()
        thread = thread_root(pdu.content)
        for user_id, ruleset in zip(recipients, rulesets, strict=True):
            outcome = evaluation.outcome(ruleset, user_id,
                                         partial(inputs.context, user_id, pdu.sender))
            if outcome.notify:
                found.append(Notification(user_id, stream_ordering, pdu.room_id, pdu.event_id,
                                          list(outcome.actions), outcome.highlight, ts, thread))
        return found

    async def _prune_loop(self) -> None:
        while True:
            try:
                pruned = await self._notifications.prune(now_ms() - RETENTION_MS)
                if pruned:
                    log.info("push: pruned %d old notifications", pruned)
            except Exception:
                log.exception("push: pruning notifications failed")
            await asyncio.sleep(PRUNE_INTERVAL_S)

    # -- delivery --

    def _wake(self, key: PusherKey, position: int) -> None:
        """Make the pusher's task look for notifications up to ``position`` (starting it if
        idle)."""
        self._wanted[key] = max(position, self._wanted.get(key, -1))
        wake = self._wakes.get(key)
        if wake is None:
            wake = self._wakes[key] = asyncio.Event()
            self._pusher_tasks[key] = asyncio.create_task(self._pusher_loop(key, wake))
        wake.set()

    async def _pusher_loop(self, key: PusherKey, wake: asyncio.Event) -> None:
        try:
            while wake.is_set():
                wake.clear()
                await self._catch_up(key)
        except Exception:
            log.exception("push: pusher %s/%s of %s failed", key[1], key[2], key[0])
        finally:
            if self._wakes.get(key) is wake:  # no await since the last check: no lost wake
                del self._wakes[key]
                self._pusher_tasks.pop(key, None)
                self._wanted.pop(key, None)

    async def _catch_up(self, key: PusherKey) -> None:
        pause = WAIT_EVALUATION_S
        while True:
            upto = self._evaluated_upto()
            pusher = await self._pushers.get(*key)
            if pusher is None or pusher.kind != HTTP:
                return
            rows = await self._notifications.oldest_first(
                pusher.user_id, pusher.last_stream_ordering, upto, BATCH)
            if not rows:
                if self._wanted.get(key, -1) <= upto:
                    return
                # Woken for a notification an earlier event may still have to come before.
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            for row in rows:
                if not await self._deliver(key, row):
                    return
                if not await self._pushers.advance(*key, row.stream_ordering):
                    return  # deleted meanwhile

    async def _deliver(self, key: PusherKey, row: Notification) -> bool:
        """Push one notification, retrying; False when the pusher is gone."""
        if now_ms() - row.ts > STALE_MS:
            return True
        stored = (await self._events.get_events([row.event_id])).get(row.event_id)
        if stored is None or stored.redacted_by is not None:
            return True  # nothing left worth alerting about
        delay = self._config.initial_backoff_s
        for attempt in range(1, self._config.max_attempts + 1):
            pusher = await self._pushers.get(*key)
            if pusher is None or pusher.kind != HTTP:
                return False
            if pusher.last_stream_ordering >= row.stream_ordering:
                return True  # the pusher was set again since: it starts after this one
            body = await self._body(pusher, stored.pdu, row)
            rejected = await self._post(pusher, body)
            if rejected is not None:
                if pusher.pushkey in rejected:
                    log.info("push: gateway rejected pushkey %s of %s: removing the pusher",
                             pusher.pushkey, pusher.user_id)
                    await self._pushers.delete(*key)
                    return False
                return True
            if attempt < self._config.max_attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.max_backoff_s)
        log.warning("push: giving up on %s for %s/%s after %d attempts", row.event_id,
                    key[0], key[1], self._config.max_attempts)
        return True

    async def _body(self, pusher: Pusher, pdu: PDU, row: Notification) -> dict[str, Any]:
        unread = await self._notifications.unread_count(pusher.user_id)
        if pusher.data.get("format") == EVENT_ID_ONLY:
            return notify_body(pusher, pdu, row.actions, unread)
        room = await self._timeline.room(pdu.room_id)
        state = {} if room is None else await self._timeline.state_events(
            room, [("m.room.member", pdu.sender), ROOM_NAME, CANONICAL_ALIAS])
        alias = _text(state.get(CANONICAL_ALIAS), "alias")
        return notify_body(
            pusher, pdu, row.actions, unread, include_content=self._config.include_content,
            sender_display_name=_text(state.get(("m.room.member", pdu.sender)), "displayname"),
            room_name=_text(state.get(ROOM_NAME), "name") or alias, room_alias=alias)

    async def _post(self, pusher: Pusher, body: dict[str, Any]) -> list[str] | None:
        """POST to the pusher's gateway: its rejected pushkeys, or None on failure."""
        if self._session is None:
            return None
        url = pusher.data["url"]
        try:
            async with self._requests, self._session.post(
                    url, data=orjson.dumps(body),
                    headers={"Content-Type": "application/json"}) as resp:
                if resp.status // 100 != 2:
                    log.info("push: gateway %s answered %d", url, resp.status)
                    return None
                answer = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            log.info("push: gateway %s failed: %s", url, str(e) or type(e).__name__)
            return None
        rejected = answer.get("rejected") if isinstance(answer, dict) else None
        return [k for k in rejected if isinstance(k, str)] if isinstance(rejected, list) else []
