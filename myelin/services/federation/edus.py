"""Typing notifications, read receipts and presence between servers (server-server API,
"Typing Notifications", "Receipts", "Presence", and the EDU rules of "Server Access Control
Lists (ACLs)").

Outbound, the ``EduRelay`` listens to the local services (their ``on_change``/``on_receipt``
lists, so they need no federation code) and decides who hears what: typing and receipts go
to every other server with a member joined to the room (unless the room's ACL denies it);
presence goes to every server sharing a room with the user, and to a server when it joins a
room with our users (it would otherwise know nothing until their next change). Private
receipts never leave this server (client-server API, "Receipts": ``m.read.private`` MUST NOT
appear in the federated ``m.receipt`` EDU). One worker queues the EDUs in the order the
changes happened, so "stopped typing" cannot overtake "started typing".

Inbound, the handlers for ``TransactionReceiver.edu_handlers`` take nothing on trust: the
content must have the spec's shape, the user must belong to the sending server, typing and
receipts need the user joined to the room here and the room's ACL to allow the sender, and
presence is kept only for users in a room here (so a server cannot fill our memory with
users nobody here can see). Presence for a user not (yet) in a room here waits a little in a
small bounded buffer: when one of our users joins a room over federation, the resident
server sends its users' presence while we may still be storing the room's state, and those
updates are applied once the join is persisted. Junk is dropped silently and a handler never
raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NamedTuple, Protocol, TypeGuard

from myelin.core.events import PDU
from myelin.services.federation.outbound import server_of
from myelin.services.presence import STATES, PresenceService
from myelin.services.receipts import READ, ReceiptService
from myelin.services.typing import TypingService
from myelin.storage.stores.receipts import Receipt
from myelin.storage.stores.state import StateStore

log = logging.getLogger("myelin.federation")

TYPING, RECEIPT, PRESENCE = "m.typing", "m.receipt", "m.presence"
MAX_ID_LENGTH = 255  # the spec's limit for user, room and event IDs
# Presence of users not yet in a room here: how many are kept, and for how long.
MAX_UNPLACED, UNPLACED_TTL_S = 1000, 120.0

EduHandler = Callable[[str, Any], Awaitable[None]]


class EduQueue(Protocol):
    async def send_edu(self, destination: str, edu_type: str, content: dict[str, Any], *,
                       key: str | None = None) -> None: ...


class PresenceUpdate(NamedTuple):
    user_id: str
    presence: str
    last_active_ago: int
    currently_active: bool
    status_msg: str | None


def _is_id(value: object, sigil: str) -> TypeGuard[str]:
    """Room and event IDs need not name a server (room version 12, event IDs since v3)."""
    return isinstance(value, str) and value.startswith(sigil) and 1 < len(value) \
        <= MAX_ID_LENGTH and (sigil != "@" or ":" in value)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_receipt(room_id: str, user_id: Any, value: Any) -> Receipt | None:
    """One ``m.read`` entry of an ``m.receipt`` EDU, or None if it is not the spec's shape:
    ``{"event_ids": [event ID, ...], "data": {"ts": int, "thread_id"?: str}}``."""
    if not _is_id(user_id, "@") or not isinstance(value, dict):
        return None
    event_ids, data = value.get("event_ids"), value.get("data")
    if not isinstance(event_ids, list) or not event_ids \
            or not all(_is_id(e, "$") for e in event_ids):
        return None
    if not isinstance(data, dict) or not _is_int(data.get("ts")) or data["ts"] < 0:
        return None
    thread_id = data.get("thread_id")
    if thread_id is not None and (not isinstance(thread_id, str) or not thread_id
                                  or len(thread_id) > MAX_ID_LENGTH):
        return None
    # The spec allows exactly one event ID; of several, the last stands for "read up to".
    return Receipt(room_id, READ, user_id, thread_id or "", event_ids[-1], data["ts"])


def parse_presence(value: Any) -> PresenceUpdate | None:
    """One entry of an ``m.presence`` EDU's ``push`` list, or None if it is not the spec's
    shape (``user_id``, ``presence`` and ``last_active_ago`` required)."""
    if not isinstance(value, dict) or not _is_id(value.get("user_id"), "@"):
        return None
    presence, ago = value.get("presence"), value.get("last_active_ago")
    active, status = value.get("currently_active", False), value.get("status_msg")
    if presence not in STATES or not _is_int(ago) or ago < 0 or not isinstance(active, bool):
        return None
    if status is not None and not isinstance(status, str):
        return None
    return PresenceUpdate(value["user_id"], presence, ago, active, status)


class EduRelay:
    def __init__(self, server_name: str, queue: EduQueue, state: StateStore,
                 acl_allows: Callable[[str, str], Awaitable[bool]], typing: TypingService,
                 receipts: ReceiptService, presence: PresenceService) -> None:
        self._server_name = server_name
        self._queue = queue
        self._state = state
        self._acl_allows = acl_allows
        self._typing = typing
        self._receipts = receipts
        self._presence = presence
        self._jobs: deque[Callable[[], Awaitable[None]]] = deque()
        self._worker: asyncio.Task[None] | None = None
        # user -> (update, time.monotonic() received) for users in no room here yet.
        self._unplaced: OrderedDict[str, tuple[PresenceUpdate, float]] = OrderedDict()

    def handlers(self) -> dict[str, EduHandler]:
        """The inbound handlers, by EDU type, for ``TransactionReceiver.edu_handlers``."""
        return {TYPING: self._guarded(TYPING, self.receive_typing),
                RECEIPT: self._guarded(RECEIPT, self.receive_receipts),
                PRESENCE: self._guarded(PRESENCE, self.receive_presence)}

    @staticmethod
    def _guarded(edu_type: str, handler: EduHandler) -> EduHandler:
        async def run(origin: str, content: Any) -> None:
            try:
                await handler(origin, content)
            except Exception:  # one bad EDU must not cost the rest of the transaction
                log.exception("%s EDU from %s failed", edu_type, origin)
        return run

    # -- outbound: listeners on the local services --

    def on_typing(self, room_id: str, user_id: str, typing: bool) -> None:
        """``TypingService.on_change`` listener."""
        if server_of(user_id) == self._server_name:
            self._schedule(partial(self._send_typing, room_id, user_id, typing))

    def on_receipt(self, receipt: Receipt) -> None:
        """``ReceiptService.on_receipt`` listener: public read receipts only."""
        if receipt.receipt_type == READ and server_of(receipt.user_id) == self._server_name:
            self._schedule(partial(self._send_receipt, receipt))

    def on_presence(self, user_id: str) -> None:
        """``PresenceService.on_change`` listener."""
        if self._presence.enabled and server_of(user_id) == self._server_name:
            self._schedule(partial(self._send_presence, user_id))

    def on_persisted(self, pdu: PDU, stream: int) -> None:
        """``Timeline.on_persisted`` listener: a join may bring a server that has not heard
        our users' presence, or one of our users whose presence that room's servers lack."""
        if self._presence.enabled and pdu.type == "m.room.member" and pdu.state_key \
                and pdu.membership == "join":
            self._schedule(partial(self._presence_for_join, pdu.room_id, pdu.state_key))
            if self._unplaced:
                self._schedule(self._place_unplaced)

    def _schedule(self, job: Callable[[], Awaitable[None]]) -> None:
        self._jobs.append(job)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work(),
                                                                   name="edu-relay")

    async def _work(self) -> None:
        while self._jobs:
            job = self._jobs.popleft()
            try:
                await job()
            except Exception:
                log.exception("queueing an EDU for other servers failed")

    async def drain(self) -> None:
        """Finish queueing what the local services handed over (at shutdown)."""
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _room_servers(self, room_id: str) -> list[str]:
        """Other servers with a member joined to the room that its ACL allows."""
        servers = {s for m in await self._state.joined_members(room_id)
                   if (s := server_of(m)) is not None and s != self._server_name}
        return [s for s in sorted(servers) if await self._acl_allows(room_id, s)]

    async def _send_typing(self, room_id: str, user_id: str, typing: bool) -> None:
        content = {"room_id": room_id, "user_id": user_id, "typing": typing}
        for destination in await self._room_servers(room_id):
            await self._queue.send_edu(destination, TYPING, content, key=f"{room_id}/{user_id}")

    async def _send_receipt(self, receipt: Receipt) -> None:
        data: dict[str, Any] = {"ts": receipt.ts}
        if receipt.thread_id:
            data["thread_id"] = receipt.thread_id
        content = {receipt.room_id: {READ: {receipt.user_id: {"event_ids": [receipt.event_id],
                                                              "data": data}}}}
        # A newer receipt of the same user and thread replaces one still queued.
        key = f"{receipt.room_id}/{receipt.user_id}/{receipt.thread_id}"
        for destination in await self._room_servers(receipt.room_id):
            await self._queue.send_edu(destination, RECEIPT, content, key=key)

    async def _send_presence(self, user_id: str) -> None:
        state = self._presence.federation_state(user_id)  # the newest, not the one announced
        if state is None:
            return
        servers: set[str] = set()
        for room_id, membership, _, _ in await self._state.get_user_memberships(user_id):
            if membership == "join":
                servers.update(s for m in await self._state.joined_members(room_id)
                               if (s := server_of(m)) is not None)
        for destination in sorted(servers - {self._server_name}):
            await self._queue.send_edu(destination, PRESENCE, {"push": [state]}, key=user_id)

    async def _presence_for_join(self, room_id: str, user_id: str) -> None:
        membership = await self._state.get_membership(room_id, user_id)
        if membership is None or membership[0] != "join":
            return  # rejected, or left again already
        members = await self._state.joined_members(room_id)
        joiner = server_of(user_id)
        if joiner == self._server_name:
            state = self._presence.federation_state(user_id)
            if state is None:
                return
            servers = {s for m in members if (s := server_of(m)) is not None}
            for destination in sorted(servers - {self._server_name}):
                await self._queue.send_edu(destination, PRESENCE, {"push": [state]},
                                           key=user_id)
        elif joiner is not None:
            if any(server_of(m) == joiner for m in members if m != user_id):
                return  # that server was in the room already and knows our users
            push = [p for m in sorted(members) if server_of(m) == self._server_name
                    and (p := self._presence.federation_state(m)) is not None]
            if push:
                await self._queue.send_edu(joiner, PRESENCE, {"push": push})

    # -- inbound: EDU handlers --

    async def _joined(self, room_id: str, user_id: str) -> bool:
        membership = await self._state.get_membership(room_id, user_id)
        return membership is not None and membership[0] == "join"

    async def receive_typing(self, origin: str, content: Any) -> None:
        """``m.typing``: ``{room_id, user_id, typing}``."""
        if not isinstance(content, dict):
            return
        room_id, user_id, typing = (content.get("room_id"), content.get("user_id"),
                                    content.get("typing"))
        if not _is_id(room_id, "!") or not _is_id(user_id, "@") \
                or not isinstance(typing, bool):
            return
        if server_of(user_id) != origin:
            log.info("ignoring typing of %s sent by %s", user_id, origin)
            return
        if not await self._acl_allows(room_id, origin) or not await self._joined(room_id,
                                                                                 user_id):
            return
        await self._typing.set_remote_typing(room_id, user_id, typing)

    async def receive_receipts(self, origin: str, content: Any) -> None:
        """``m.receipt``: ``{room_id: {"m.read": {user_id: {event_ids, data}}}}``. Only
        ``m.read`` is defined between servers; every other type is ignored."""
        if not isinstance(content, dict):
            return
        accepted: list[Receipt] = []
        for room_id, by_type in content.items():
            if not _is_id(room_id, "!") or not isinstance(by_type, dict):
                continue
            users = by_type.get(READ)
            if not isinstance(users, dict) or not users:
                continue
            if not await self._acl_allows(room_id, origin):
                continue  # the ACL rule: all receipts for a denied room are ignored
            for user_id, value in users.items():
                receipt = parse_receipt(room_id, user_id, value)
                if receipt is None or server_of(receipt.user_id) != origin:
                    continue
                if await self._joined(room_id, receipt.user_id):
                    accepted.append(receipt)
        await self._receipts.add_remote_receipts(accepted)

    async def receive_presence(self, origin: str, content: Any) -> None:
        """``m.presence``: ``{push: [{user_id, presence, last_active_ago, ...}]}``."""
        if not self._presence.enabled or not isinstance(content, dict):
            return
        push = content.get("push")
        if not isinstance(push, list):
            return
        for value in push:
            update = parse_presence(value)
            if update is None or server_of(update.user_id) != origin:
                continue
            if not await self._in_a_room(update.user_id):
                self._unplaced.pop(update.user_id, None)
                self._unplaced[update.user_id] = (update, time.monotonic())
                while len(self._unplaced) > MAX_UNPLACED:
                    self._unplaced.popitem(last=False)
                continue
            self._unplaced.pop(update.user_id, None)
            await self._apply_presence(update)

    async def _in_a_room(self, user_id: str) -> bool:
        return any(m == "join" for _, m, _, _ in await self._state.get_user_memberships(user_id))

    async def _apply_presence(self, update: PresenceUpdate, waited_s: float = 0.0) -> None:
        await self._presence.set_remote(update.user_id, update.presence,
                                        update.last_active_ago + int(waited_s * 1000),
                                        update.currently_active, update.status_msg)

    async def _place_unplaced(self) -> None:
        """After a join: apply held presence of users now in a room here; drop stale ones."""
        now = time.monotonic()
        for user_id, held in list(self._unplaced.items()):
            update, received = held
            if now - received > UNPLACED_TTL_S:
                self._unplaced.pop(user_id, None)
            # Applied only if no newer update came for the user while we looked.
            elif await self._in_a_room(user_id) and self._unplaced.get(user_id) is held:
                self._unplaced.pop(user_id, None)
                await self._apply_presence(update, now - received)
