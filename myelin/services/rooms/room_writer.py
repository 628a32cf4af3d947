"""A room's pipeline to the database: events written in order, several per transaction.

Why it exists: a room's events are built one after another, each on the one before, under the
room's lock. If the lock were held until each event's COMMIT, a busy room could never go faster
than one database round trip per event, however idle the CPU. So the timeline builds and
authorises an event under the lock, updates the room's in-memory state at once (the next event
is built on it straight away) and queues the event here; this writer stores everything queued
so far in ONE transaction, in order, and only then is each event announced and its request
answered. Nothing is visible to readers before it is committed: the events' stream positions
stay open until then.

When a write fails, its events and every event queued after them (they were built on the failed
ones) fail too, and the room is marked stale so the timeline reloads its state from the database
before building on it again. A batch of several events that fails is retried one event at a
time first, so one bad event (a duplicate transaction ID, say) fails only itself and the events
built on it, not the unrelated ones before it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from myelin.core.events import PDU
from myelin.storage.database import Database, Statement

log = logging.getLogger("myelin.rooms")

MAX_BATCH = 200  # events per transaction: bounds the transaction, not the queue


@dataclass
class QueuedEvent:
    """An event whose fate is decided and whose statements only wait to be committed."""

    pdu: PDU
    statements: list[Statement]
    stream: int
    generation: int  # the room state generation it was built on (see ``RoomWriter.fail``)
    notify_users: list[str]
    written: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    def settle(self, error: BaseException | None = None) -> None:
        if self.written.done():  # the request gave up waiting: the outcome still stands
            return
        if error is None:
            self.written.set_result(None)
        else:
            self.written.set_exception(error)
            self.written.exception()  # retrieved: a caller that left must not log it as lost


WrittenCallback = Callable[[list[QueuedEvent]], None]
FailedCallback = Callable[[list[QueuedEvent], BaseException], None]


class RoomWriter:
    """Writes one room's queued events, in order, with one task at a time."""

    def __init__(self, db: Database, on_written: WrittenCallback,
                 on_failed: FailedCallback) -> None:
        self._db = db
        self._on_written = on_written
        self._on_failed = on_failed
        self._queue: list[QueuedEvent] = []
        self._task: asyncio.Task[None] | None = None
        # Events built on this generation or an older one are built on a failed write.
        self._failed_generation = -1

    @property
    def idle(self) -> bool:
        return self._task is None

    def submit(self, event: QueuedEvent) -> None:
        self._queue.append(event)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def drain(self) -> None:
        """Wait until everything queued so far (and queued meanwhile) is written or failed."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                stale = [e for e in batch if e.generation <= self._failed_generation]
                if stale:
                    self._fail(stale, RuntimeError("built on an event that failed to persist"))
                    batch = [e for e in batch if e.generation > self._failed_generation]
                if batch:
                    await self._write(batch)
        except BaseException as e:  # cancelled (shutdown): nobody may wait forever
            self._fail(self._queue, e)
            self._queue = []
            raise
        finally:
            self._task = None

    async def _write(self, batch: list[QueuedEvent]) -> None:
        try:
            await self._db.write_batch([s for event in batch for s in event.statements])
        except Exception as e:
            if len(batch) == 1:
                self._fail_from(batch, 0, e)
                return
            log.warning("writing %d events of %s failed (%s); retrying one by one",
                        len(batch), batch[0].pdu.room_id, e)
            for index, event in enumerate(batch):
                try:
                    await self._db.write_batch(event.statements)
                except Exception as single:
                    if index:
                        self._on_written(batch[:index])
                    self._fail_from(batch, index, single)
                    return
            self._on_written(batch)
            return
        except BaseException as e:
            self._fail(batch, e)
            raise
        self._on_written(batch)

    def _fail_from(self, batch: list[QueuedEvent], index: int, error: BaseException) -> None:
        """``batch[index]`` could not be written: it fails, and so does every event queued
        after it, built on it."""
        failed = batch[index:] + self._queue
        self._queue = []
        self._failed_generation = max(e.generation for e in failed)
        self._fail(failed, error)

    def _fail(self, events: list[QueuedEvent], error: BaseException) -> None:
        if events:
            self._on_failed(events, error)
