"""Outgoing transactions (server-server API, "Transactions"): per-destination queues of PDUs
and EDUs, sent as ``PUT /_matrix/federation/v1/send/{txnId}``, at most 50 PDUs and 100 EDUs
each, one transaction in flight per destination so each destination sees our events in order.

Queued items live in the database until the destination accepts the transaction carrying
them, so nothing is lost over a restart, and a destination that was down gets everything it
missed once it is back (catch-up). Failures back off exponentially; the retry time is stored
too, and a request from the destination itself ends the wait (it is evidently up again).
A batch keeps its transaction ID across retries (the receiver deduplicates by it) and a new
batch never reuses one: the per-destination counter is stored before the batch is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from myelin.services.federation.client import FederationClient, FederationError
from myelin.storage.stores.federation_outbox import (
    DestinationState,
    FederationOutboxStore,
    OutboxItem,
)

log = logging.getLogger("myelin.federation")

MAX_PDUS, MAX_EDUS = 50, 100


class FederationSender:
    def __init__(self, store: FederationOutboxStore, client: FederationClient, server_name: str,
                 *, clock: Callable[[], float] = time.time, min_backoff_s: float = 2.0,
                 max_backoff_s: float = 3600.0, request_timeout_s: float = 60.0) -> None:
        self._store = store
        self._client = client
        self._server_name = server_name
        self._clock = clock
        self._min_backoff = min_backoff_s
        self._max_backoff = max_backoff_s
        self._timeout = request_timeout_s
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wakeups: dict[str, asyncio.Event] = {}
        self._retry_at: dict[str, float] = {}
        self._running = False

    async def start(self) -> None:
        self._running = True
        for destination in await self._store.destinations_with_items():
            self._wake(destination)

    async def stop(self) -> None:
        self._running = False
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()

    async def send_pdu(self, destinations: Iterable[str], pdu_json: dict[str, Any]) -> None:
        targets = sorted({d for d in destinations if d != self._server_name})
        await self._store.add(targets, "pdu", pdu_json)
        for destination in targets:
            self._wake(destination)

    async def send_edu(self, destination: str, edu_type: str, content: dict[str, Any], *,
                       key: str | None = None) -> None:
        if destination == self._server_name:
            return
        await self._store.add([destination], "edu", {"edu_type": edu_type, "content": content},
                              edu_key=f"{edu_type}/{key}" if key is not None else None)
        self._wake(destination)

    def destination_alive(self, destination: str) -> None:
        """The destination just talked to us: stop waiting out its backoff."""
        if self._retry_at.pop(destination, None) is not None:
            self._wake(destination)

    def backoff_until(self, destination: str) -> float | None:
        return self._retry_at.get(destination)

    async def queued(self, destination: str) -> int:
        return await self._store.count(destination)

    def _wake(self, destination: str) -> None:
        if not self._running:
            return
        self._wakeups.setdefault(destination, asyncio.Event()).set()
        worker = self._workers.get(destination)
        if worker is None or worker.done():
            self._workers[destination] = asyncio.get_running_loop().create_task(
                self._work(destination), name=f"federation-send-{destination}")

    async def _work(self, destination: str) -> None:
        wakeup = self._wakeups.setdefault(destination, asyncio.Event())
        state = await self._store.destination(destination)
        if state.retry_at / 1000 > self._clock():  # restarted while backing off
            self._retry_at.setdefault(destination, state.retry_at / 1000)
        batch: tuple[str, list[OutboxItem]] | None = None
        while self._running:
            retry_at = self._retry_at.get(destination)
            if retry_at is not None and retry_at > self._clock():
                wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), timeout=retry_at - self._clock())
                if self._retry_at.get(destination) == retry_at and retry_at > self._clock():
                    continue  # woken by new items only: keep honouring the backoff
            wakeup.clear()
            if batch is None:
                items = await self._store.pending(destination, MAX_PDUS, MAX_EDUS)
                if not items:
                    if wakeup.is_set():
                        continue  # items arrived while we looked
                    return  # idle: a later wake starts a new worker
                state = DestinationState(state.failures, state.retry_at, state.txn_counter + 1)
                await self._store.save_destination(destination, state)
                batch = (f"{int(self._clock() * 1000)}.{state.txn_counter}", items)
            txn_id, items = batch
            outcome = await self._send(destination, txn_id, items)
            if outcome == "sent" or outcome == "refused":
                await self._store.remove(destination, [i.position for i in items])
                batch = None
                if state.failures:
                    state = DestinationState(0, 0, state.txn_counter)
                    await self._store.save_destination(destination, state)
                self._retry_at.pop(destination, None)
                continue
            failures = state.failures + 1
            delay = min(self._max_backoff, self._min_backoff * 2 ** (failures - 1))
            delay *= random.uniform(0.8, 1.2)
            retry_at = self._clock() + delay
            state = DestinationState(failures, int(retry_at * 1000), state.txn_counter)
            await self._store.save_destination(destination, state)
            self._retry_at[destination] = retry_at
            log.info("federation to %s failed (%d in a row); retrying in %.0f s", destination,
                     failures, delay)

    async def _send(self, destination: str, txn_id: str, items: list[OutboxItem]) -> str:
        """"sent", "refused" (4xx: retrying cannot help, the batch is dropped) or "failed"."""
        pdus = [orjson.loads(i.json) for i in items if i.kind == "pdu"]
        edus = [orjson.loads(i.json) for i in items if i.kind == "edu"]
        body = {"origin": self._server_name, "origin_server_ts": int(self._clock() * 1000),
                "pdus": pdus, "edus": edus}
        try:
            answer = await self._client.request(destination, "PUT",
                                                f"/_matrix/federation/v1/send/{txn_id}",
                                                json=body, timeout_s=self._timeout)
        except FederationError as e:
            if 400 <= e.status < 500 and e.status != 429:
                log.warning("%s refused transaction %s (%s); dropping its %d PDUs and %d EDUs",
                            destination, txn_id, e, len(pdus), len(edus))
                return "refused"
            log.info("transaction %s to %s failed: %s", txn_id, destination, e)
            return "failed"
        results = answer.get("pdus") if isinstance(answer, dict) else None
        if isinstance(results, dict):
            for event_id, result in results.items():
                if isinstance(result, dict) and result.get("error"):
                    log.info("%s did not accept %s: %s", destination, event_id,
                             result["error"])
        return "sent"
