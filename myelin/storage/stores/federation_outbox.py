"""The federation outbox (tables ``federation_outbox`` and ``federation_destinations``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from myelin.storage.database import Database, Statement


@dataclass(frozen=True, slots=True)
class OutboxItem:
    position: int
    kind: str  # "pdu" or "edu"
    json: bytes


@dataclass(frozen=True, slots=True)
class DestinationState:
    failures: int
    retry_at: int
    txn_counter: int


class FederationOutboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, destinations: Iterable[str], kind: str, payload: object,
                  edu_key: str | None = None) -> None:
        """Queue one item for each destination (one write for all of them)."""
        data = orjson.dumps(payload).decode()
        rows = [(d, kind, edu_key, data) for d in destinations]
        if not rows:
            return
        statements = []
        if edu_key is not None:
            statements.append(Statement(
                "DELETE FROM federation_outbox WHERE destination = $1 AND edu_key = $2",
                [(d, edu_key) for d, *_ in rows], many=True))
        statements.append(Statement(
            "INSERT INTO federation_outbox (destination, kind, edu_key, json)"
            " VALUES ($1, $2, $3, $4)", rows, many=True))
        await self._db.write_batch(statements)

    async def pending(self, destination: str, max_pdus: int, max_edus: int) -> list[OutboxItem]:
        """The oldest items for one transaction: up to ``max_pdus`` PDUs and ``max_edus``
        EDUs, in queue order."""
        rows = await self._db.fetch(
            "SELECT position, kind, json FROM federation_outbox WHERE destination = $1"
            " ORDER BY position LIMIT $2", destination, max_pdus + max_edus)
        items, pdus, edus = [], 0, 0
        for row in rows:
            if row["kind"] == "pdu":
                if pdus == max_pdus:
                    break
                pdus += 1
            else:
                if edus == max_edus:
                    break
                edus += 1
            items.append(OutboxItem(int(row["position"]), row["kind"], row["json"].encode()))
        return items

    async def remove(self, destination: str, positions: list[int]) -> None:
        await self._db.executemany(
            "DELETE FROM federation_outbox WHERE destination = $1 AND position = $2",
            [(destination, p) for p in positions])

    async def count(self, destination: str) -> int:
        return int(await self._db.fetchval(
            "SELECT COUNT(*) FROM federation_outbox WHERE destination = $1", destination))

    async def destinations_with_items(self) -> list[str]:
        rows = await self._db.fetch("SELECT DISTINCT destination FROM federation_outbox")
        return [r["destination"] for r in rows]

    async def destination(self, destination: str) -> DestinationState:
        row = await self._db.fetchrow(
            "SELECT failures, retry_at, txn_counter FROM federation_destinations"
            " WHERE destination = $1", destination)
        if row is None:
            return DestinationState(0, 0, 0)
        return DestinationState(int(row["failures"]), int(row["retry_at"]),
                                int(row["txn_counter"]))

    async def save_destination(self, destination: str, state: DestinationState) -> None:
        await self._db.execute(
            "INSERT INTO federation_destinations (destination, failures, retry_at, txn_counter)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (destination) DO UPDATE SET"
            " failures = excluded.failures, retry_at = excluded.retry_at,"
            " txn_counter = excluded.txn_counter",
            destination, state.failures, state.retry_at, state.txn_counter)
