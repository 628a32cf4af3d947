"""Receipts and read markers (client-server API, "Receipts", "Fully read markers").

Receipts are stored and take positions in the shared stream, so /sync tokens cover them;
``m.read.private`` receipts are shown only to their owner.

Local users' receipts are reported to ``on_receipt`` listeners (the federation EDU relay,
which must leave private ones out), so this module needs no federation code; receipts from
other servers arrive through ``add_remote_receipts`` and are shown exactly like local ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from myelin.errors import forbidden, invalid_param, not_found
from myelin.services.account_data import AccountDataService
from myelin.services.notifier import Notifier
from myelin.services.rooms.timeline import Timeline
from myelin.services.stream_changes import StreamChanges
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.receipts import Receipt, ReceiptStore
from myelin.storage.stores.state import StateStore

READ, READ_PRIVATE, FULLY_READ = "m.read", "m.read.private", "m.fully_read"

log = logging.getLogger("myelin.receipts")

_MAX_CACHED_READS = 100_000

# Called synchronously with each receipt a local user stored (public or private); must only
# schedule work, never block.
ReceiptListener = Callable[[Receipt], None]


class ReceiptService:
    def __init__(self, store: ReceiptStore, state: StateStore, timeline: Timeline,
                 account_data: AccountDataService, stream: StreamPositions,
                 notifier: Notifier) -> None:
        self._store = store
        self._state = state
        self._timeline = timeline
        self._account_data = account_data
        self._stream = stream
        self._notifier = notifier
        # Listeners hearing about local users' receipts, e.g. federation.
        self.on_receipt: list[ReceiptListener] = []
        # latest_read answers, asked by every /sync of every room with news; every receipt
        # is written through _store_receipts, which drops the entries it changes.
        self._latest_read: dict[tuple[str, str, str], str | None] = {}
        self._changes = StreamChanges(stream.current)  # any receipt, anywhere
        self._receipt_writes = 0  # bumped around each write: a read that overlapped one is
        # not cached, as it may hold the value from before the write

    async def _check(self, user_id: str, room_id: str, event_id: str) -> None:
        membership = await self._state.get_membership(room_id, user_id)
        if membership is None or membership[0] != "join":
            raise forbidden("You are not in this room")
        pdu = (await self._timeline.get_pdus([event_id])).get(event_id)
        if pdu is None or pdu.room_id != room_id:
            raise not_found("Event not found in this room")

    async def send_receipt(self, user_id: str, room_id: str, receipt_type: str, event_id: str,
                           thread_id: str | None) -> None:
        if receipt_type not in (READ, READ_PRIVATE, FULLY_READ):
            raise invalid_param(f"Unknown receipt type {receipt_type!r}")
        if thread_id is not None and (not thread_id or receipt_type == FULLY_READ):
            raise invalid_param("Invalid thread_id for this receipt")
        await self._check(user_id, room_id, event_id)
        if receipt_type == FULLY_READ:
            await self._account_data.put_managed(user_id, room_id, FULLY_READ,
                                                 {"event_id": event_id})
            return
        receipt = Receipt(room_id, receipt_type, user_id, thread_id or "", event_id,
                          int(time.time() * 1000))
        await self._store_receipts([receipt])
        for listener in self.on_receipt:
            try:
                listener(receipt)
            except Exception:  # a listener's bug must not fail the client's request
                log.exception("receipt listener failed")

    async def add_remote_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Receipts from another server's ``m.receipt`` EDU, already checked (origin owns
        each user, the user is joined here, the room's ACL allows the origin). Each replaces
        that user's previous receipt of the same type and thread, like a local one."""
        await self._store_receipts(receipts)

    async def _store_receipts(self, receipts: Sequence[Receipt]) -> None:
        if not receipts:
            return
        for receipt in receipts:
            key = (receipt.room_id, receipt.user_id, receipt.thread_id)
            position = self._stream.allocate()
            self._changes.mark(position)
            self._receipt_writes += 1
            self._latest_read.pop(key, None)
            try:
                await self._store.upsert(receipt, position)
            finally:
                self._stream.finish(position)
                self._receipt_writes += 1
                self._latest_read.pop(key, None)
        self._notifier.announce(self._stream.current, rooms={r.room_id for r in receipts},
                                users={r.user_id for r in receipts})

    async def set_read_markers(self, user_id: str, room_id: str, fully_read: str | None,
                               read: str | None, read_private: str | None) -> None:
        """POST /rooms/{roomId}/read_markers."""
        if fully_read is not None:
            await self.send_receipt(user_id, room_id, FULLY_READ, fully_read, None)
        if read is not None:
            await self.send_receipt(user_id, room_id, READ, read, None)
        if read_private is not None:
            await self.send_receipt(user_id, room_id, READ_PRIVATE, read_private, None)

    async def ephemeral(self, user_id: str, room_ids: Sequence[str], since: int | None,
                        upto: int) -> dict[str, dict[str, Any]]:
        """One ``m.receipt`` event per room with receipts newer than ``since``."""
        events: dict[str, dict[str, Any]] = {}
        if since is not None and not self._changes.changed_after(since):
            return events  # no receipt anywhere since then
        for receipt in await self._store.list_for_rooms(list(room_ids),
                                                        since if since is not None else -1,
                                                        upto):
            if receipt.receipt_type == READ_PRIVATE and receipt.user_id != user_id:
                continue
            content = events.setdefault(receipt.room_id, {"type": "m.receipt", "content": {}})
            data: dict[str, Any] = {"ts": receipt.ts}
            if receipt.thread_id:
                data["thread_id"] = receipt.thread_id
            content["content"].setdefault(receipt.event_id, {}).setdefault(
                receipt.receipt_type, {})[receipt.user_id] = data
        return events

    async def latest_read(self, room_id: str, user_id: str, thread_id: str = "") -> str | None:
        """The newest event the user marked read (public or private receipt) in one thread:
        '' for unthreaded receipts, "main" for the main timeline, or a thread root's ID."""
        key = (room_id, user_id, thread_id)
        if key in self._latest_read:
            return self._latest_read[key]
        writes = self._receipt_writes
        event_id = await self._read_latest(room_id, user_id, thread_id)
        if writes == self._receipt_writes:
            if len(self._latest_read) >= _MAX_CACHED_READS:
                self._latest_read.clear()  # rare; the next syncs refill what is in use
            self._latest_read[key] = event_id
        return event_id

    async def _read_latest(self, room_id: str, user_id: str, thread_id: str) -> str | None:
        public = await self._store.get_user_receipt(room_id, user_id, READ, thread_id)
        private = await self._store.get_user_receipt(room_id, user_id, READ_PRIVATE, thread_id)
        if public is None or private is None:
            return public or private
        pdus = await self._timeline.get_pdus([public, private])
        if public not in pdus or private not in pdus:
            return public if public in pdus else private
        return public if pdus[public].depth >= pdus[private].depth else private

