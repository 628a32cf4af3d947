"""Outgoing transactions (server-server API, "Transactions"): per-destination queues of PDUs
and EDUs, pushed as ``PUT /_matrix/federation/v1/send/{txnId}``.

Why it is shaped like this:

* Everything queued is written to the database first (``FederationOutboxStore``) and deleted
  only once the destination accepted the transaction carrying it, so a restart or a peer that
  is down for a day loses nothing; ``start()`` resumes every non-empty queue (catch-up).
  Callers (``send_pdu`` / ``send_edu``) only do that write and a wake-up: the network never
  blocks them.
* One worker per destination, one transaction in flight: the spec makes the sender wait for a
  200 before sending a transaction with another ``txnId``, and it keeps our events in order.
  Workers exit when their queue is empty, so idle destinations cost no task.
* A transaction holds at most 50 PDUs and 100 EDUs (spec), oldest first, and is kept in memory
  until it is finished with: retries resend the *same* body under the *same* ``txnId``, so a
  receiver that processed an attempt whose answer we lost deduplicates the retry.
  ``txnId`` = ``<nonce>.<n>``: a random 64-bit nonce drawn per worker plus a counter of the
  batches that worker formed. No other batch can reuse an ID, even after a restart (a new
  process draws new nonces) or after ``stop()``/``start()``. After a restart the unfinished
  batch is re-formed under a new ID; PDUs carry event IDs, which receivers deduplicate.
* Failures (unreachable, 5xx, 429, 408, 401) back off exponentially from ``min_backoff_s`` to
  ``max_backoff_s`` with up to 25% random jitter (so peers coming back are not hit by every
  server at once); ``retry_at`` is persisted so a restart keeps honouring it, and a 429's
  ``retry_after_ms`` is honoured. A request *from* the destination proves it is up:
  ``destination_alive`` ends the wait, as Synapse does. A 401 is retried too: it refuses our
  request signature, most often because the destination could not fetch our key just then.
* 400 and 413 refuse the transaction's content (malformed, too large): resending the same
  bytes cannot change that, but usually one item is to blame, so the batch is bisected -- the
  next transactions carry half as many items, down to one -- and only an item refused on its
  own is dropped; each accepted transaction doubles the size again. Any other 4xx (403, 404,
  ...) refuses us rather than the content: the whole batch is dropped with a warning and the
  queue moves on, where retrying forever would stall every later item. Dropped PDUs are not
  lost for the room: the destination fetches missing events (``/get_missing_events``) when a
  later PDU names them as ``prev_events``. Per-PDU errors in a 200 answer are logged, never
  retried (spec).
* EDUs may carry a key (typing per room and user, receipts, presence per user...): a newer
  one replaces the queued older one. A destination holding more than ``max_queued_edus`` EDUs
  or ``max_queued_pdus`` PDUs loses the oldest items of that kind, so a long-dead peer cannot
  grow the queue without bound; when it comes back, the newest PDUs of each room reach it and
  it fetches what it lacks (``/get_missing_events``, then the state), as after Synapse's
  catch-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from myelin.ids import is_valid_server_name
from myelin.services.federation.client import FederationClient, FederationError
from myelin.storage.stores.federation_outbox import EDU, PDU, FederationOutboxStore, QueuedItem

log = logging.getLogger("myelin.federation")

MAX_PDUS_PER_TRANSACTION = 50
MAX_EDUS_PER_TRANSACTION = 100
SEND_PATH = "/_matrix/federation/v1/send/"
_TRANSIENT_4XX = frozenset({401, 408, 429})  # see the module doc: worth retrying
_CONTENT_REFUSED = frozenset({400, 413})  # bisect the batch to find the item to blame
_FULL_BATCH = MAX_PDUS_PER_TRANSACTION + MAX_EDUS_PER_TRANSACTION


class _Outcome(enum.Enum):
    SENT = "sent"  # 2xx: delete the batch
    REFUSED = "refused"  # 4xx refusing us: delete the batch (see module doc)
    BISECT = "bisect"  # 400/413 refusing the content: retry it in smaller batches
    FAILED = "failed"  # keep the batch, back off, resend it under the same txnId


@dataclass(frozen=True, slots=True)
class _Transaction:
    txn_id: str
    items: list[QueuedItem]
    origin_server_ts: int


@dataclass(eq=False)
class _Destination:
    name: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    pdus: int = 0
    edus: int = 0
    failures: int = 0
    retry_at: float | None = None  # clock seconds; no attempt before
    batch_cap: int | None = None  # items per transaction while bisecting a refused batch


class FederationSender:
    """Queues PDUs and EDUs per destination and delivers them (see the module doc)."""

    def __init__(self, store: FederationOutboxStore, client: FederationClient, server_name: str,
                 *, clock: Callable[[], float] = time.time, min_backoff_s: float = 2.0,
                 max_backoff_s: float = 3600.0, request_timeout_s: float = 60.0,
                 max_queued_edus: int = 10_000, max_queued_pdus: int = 50_000,
                 rng: random.Random | None = None) -> None:
        self._store = store
        self._client = client
        self._server_name = server_name
        self._clock = clock  # wall clock: retry_at outlives the process
        self._min_backoff = min_backoff_s
        self._max_backoff = max(max_backoff_s, min_backoff_s)
        self._timeout = request_timeout_s
        self._max_queued_edus = max_queued_edus
        self._max_queued_pdus = max_queued_pdus
        self._rng = rng or random.Random()
        self._dests: dict[str, _Destination] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._running = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load persisted back-offs and resume every destination with something queued."""
        if self._running:
            return
        for state in await self._store.failing_destinations():
            dest = self._dest(state.destination)
            dest.failures = state.failures
            dest.retry_at = None if state.retry_at_ts is None else state.retry_at_ts / 1000
        for name, size in (await self._store.queue_sizes()).items():
            dest = self._dest(name)
            dest.pdus, dest.edus = size.pdus, size.edus
        self._running = True
        for dest in list(self._dests.values()):
            if dest.pdus or dest.edus:
                self._wake(dest)

    async def stop(self) -> None:
        """Cancel the workers; an abandoned in-flight PUT leaves its items queued."""
        self._running = False
        tasks = [d.task for d in self._dests.values() if d.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for dest in self._dests.values():
            dest.task = None
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- queueing --------------------------------------------------------------------------

    async def send_pdu(self, destinations: Iterable[str], pdu_json: dict[str, Any]) -> None:
        """Queue a PDU for each destination (one write) and wake their workers."""
        targets = sorted({d for d in destinations if self._wanted(d)})
        if not targets:
            return
        await self._store.add_pdu(targets, pdu_json, self._now_ms())
        for name in targets:
            dest = self._dest(name)
            dest.pdus += 1
            if dest.pdus > self._max_queued_pdus:
                dropped, dest.pdus = await self._store.trim(name, PDU, self._max_queued_pdus)
                if dropped:
                    log.warning("more than %d PDUs queued for %s: dropped the %d oldest",
                                self._max_queued_pdus, name, dropped)
            self._wake(dest)

    async def send_edu(self, destination: str, edu_type: str, content: dict[str, Any], *,
                       key: str | None = None) -> None:
        """Queue an EDU; a queued one with the same type and ``key`` is replaced by it."""
        if not self._wanted(destination):
            return
        replaced = await self._store.add_edu(destination, edu_type, content, key=key,
                                             now_ms=self._now_ms())
        dest = self._dest(destination)
        if not replaced:
            dest.edus += 1
        if dest.edus > self._max_queued_edus:
            dropped, dest.edus = await self._store.trim(destination, EDU, self._max_queued_edus)
            if dropped:
                log.warning("more than %d EDUs queued for %s: dropped the %d oldest",
                            self._max_queued_edus, destination, dropped)
        self._wake(dest)

    def destination_alive(self, destination: str) -> None:
        """``destination`` just sent us a request, so it is up: end its back-off now."""
        dest = self._dests.get(destination)
        if dest is None or (dest.failures == 0 and dest.retry_at is None):
            return  # the common case: nothing to reset, no write
        dest.failures, dest.retry_at = 0, None
        self._in_background(self._store.set_retry(destination, 0, None))
        self._wake(dest)

    # -- introspection (tests, metrics) ----------------------------------------------------

    def queued(self, destination: str) -> int:
        """PDUs and EDUs waiting for ``destination`` (counted in memory, so cheap)."""
        dest = self._dests.get(destination)
        return 0 if dest is None else dest.pdus + dest.edus

    def backoff_until(self, destination: str) -> float | None:
        """When the next attempt may start, while ``destination`` is failing; else None."""
        dest = self._dests.get(destination)
        return None if dest is None or dest.failures == 0 else dest.retry_at

    # -- workers ---------------------------------------------------------------------------

    def _wanted(self, destination: str) -> bool:
        if destination == self._server_name:
            return False
        if not is_valid_server_name(destination):
            log.warning("not queueing federation traffic for invalid server name %r",
                        destination)
            return False
        return True

    def _dest(self, name: str) -> _Destination:
        dest = self._dests.get(name)
        if dest is None:
            dest = self._dests[name] = _Destination(name)
        return dest

    def _wake(self, dest: _Destination) -> None:
        if not self._running:
            return  # start() picks the queue up from the database
        dest.wake.set()
        if dest.task is None or dest.task.done():
            dest.task = asyncio.get_running_loop().create_task(
                self._run(dest), name=f"federation-send-{dest.name}")

    async def _run(self, dest: _Destination) -> None:
        nonce = secrets.token_hex(8)
        formed = 0
        txn: _Transaction | None = None
        while self._running:
            try:
                await self._wait_out_backoff(dest)
                dest.wake.clear()  # before reading, so items queued meanwhile re-wake us
                if txn is None:
                    items = await self._store.next_batch(
                        dest.name, MAX_PDUS_PER_TRANSACTION, MAX_EDUS_PER_TRANSACTION,
                        dest.batch_cap)
                    if not items:
                        if dest.wake.is_set():
                            continue
                        self._idle(dest)
                        return
                    formed += 1
                    txn = _Transaction(f"{nonce}.{formed}", items, self._now_ms())
                outcome, retry_after = await self._transmit(dest.name, txn)
                if outcome is _Outcome.FAILED:
                    await self._back_off(dest, retry_after)
                    continue
                if outcome is _Outcome.BISECT:
                    dest.batch_cap = len(txn.items) // 2  # the items stay queued
                    txn = None
                    continue
                removed = await self._store.remove(dest.name, txn.items, now_ms=self._now_ms(),
                                                   delivered=outcome is _Outcome.SENT)
                if outcome is _Outcome.SENT and dest.batch_cap is not None:
                    dest.batch_cap = None if dest.batch_cap * 2 >= _FULL_BATCH else (
                        dest.batch_cap * 2)
                txn = None
                dest.pdus = max(0, dest.pdus - removed.pdus)
                dest.edus = max(0, dest.edus - removed.edus)
                dest.failures, dest.retry_at = 0, None
            except Exception:  # a bug or the database: keep the batch, retry later
                log.exception("sending to %s failed unexpectedly", dest.name)
                await self._back_off(dest, None)

    def _idle(self, dest: _Destination) -> None:
        """The queue is empty and no wake-up is pending: forget the destination unless it is
        backing off (any item counted so far has been removed, so the counts are exactly 0)."""
        dest.pdus = dest.edus = 0
        if dest.failures == 0 and self._dests.get(dest.name) is dest:
            del self._dests[dest.name]

    async def _wait_out_backoff(self, dest: _Destination) -> None:
        # New items wake us too; only destination_alive (retry_at cleared) ends the wait early.
        while dest.retry_at is not None and self._running:
            remaining = dest.retry_at - self._clock()
            if remaining <= 0:
                return
            dest.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dest.wake.wait(), remaining)

    async def _back_off(self, dest: _Destination, retry_after: float | None) -> None:
        dest.failures += 1
        delay = self._min_backoff * 2 ** min(dest.failures - 1, 40) * self._rng.uniform(1, 1.25)
        delay = min(delay, self._max_backoff)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._max_backoff))
        dest.retry_at = self._clock() + delay
        log.info("federation to %s failed (%d in a row): next attempt in %.1f s", dest.name,
                 dest.failures, delay)
        try:
            await self._store.set_retry(dest.name, dest.failures, int(dest.retry_at * 1000))
        except Exception:  # the in-memory back-off still applies
            log.exception("could not record the back-off of %s", dest.name)

    async def _transmit(self, destination: str,
                        txn: _Transaction) -> tuple[_Outcome, float | None]:
        """Send ``txn`` once: its outcome, and a 429's requested wait in seconds."""
        pdus = [i.body for i in txn.items if i.kind == PDU]
        edus = [i.body for i in txn.items if i.kind == EDU]
        body = {"origin": self._server_name, "origin_server_ts": txn.origin_server_ts,
                "pdus": pdus, "edus": edus}
        try:
            answer = await self._client.request(
                destination, "PUT", SEND_PATH + quote(txn.txn_id, safe=""), json=body,
                timeout_s=self._timeout)
        except FederationError as e:
            if 200 <= e.status < 300:  # accepted; only the answer was unreadable
                log.info("%s accepted transaction %s but its answer was unusable: %s",
                         destination, txn.txn_id, e)
                return _Outcome.SENT, None
            if e.status in _CONTENT_REFUSED and len(txn.items) > 1:
                log.info("%s refused transaction %s (%s): retrying its %d items in smaller "
                         "transactions", destination, txn.txn_id, e, len(txn.items))
                return _Outcome.BISECT, None
            if 400 <= e.status < 500 and e.status not in _TRANSIENT_4XX:
                log.warning("%s refused transaction %s (%s): dropping its %d PDUs and %d EDUs",
                            destination, txn.txn_id, e, len(pdus), len(edus))
                return _Outcome.REFUSED, None
            log.info("transaction %s to %s failed: %s", txn.txn_id, destination, e)
            return _Outcome.FAILED, _retry_after(e)
        results = answer.get("pdus") if isinstance(answer, dict) else None
        if isinstance(results, dict):
            for event_id, result in results.items():
                if isinstance(result, dict) and result.get("error"):
                    log.info("%s did not accept %s: %s", destination, event_id,
                             str(result["error"])[:200])
        return _Outcome.SENT, None

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("federation sender bookkeeping failed", exc_info=task.exception())

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _retry_after(error: FederationError) -> float | None:
    body = error.body
    value = body.get("retry_after_ms") if isinstance(body, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value / 1000
    return None
