"""Send-to-Device messages waiting for delivery (tables ``to_device_messages``,
``to_device_stream``); a send's messages, its stream high-water mark and its transaction ID are
written in one batch, and so are a received m.direct_to_device EDU's messages and its message ID
(``to_device_federation_inbox``), so a retransmitted EDU is never delivered twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from myelin.storage.database import Database, Statement


@dataclass(frozen=True, slots=True)
class PendingMessage:
    stream_id: int
    sender: str
    type: str
    content: dict[str, Any]


class ToDeviceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, sender: str, event_type: str, stream_id: int,
                  deliveries: Sequence[tuple[str, str, bytes]],
                  transaction: tuple[str, str, str, str, bytes, int] | None) -> None:
        """Store one send: ``deliveries`` are (user_id, device_id, content JSON);
        ``transaction`` is (user_id, device_id, endpoint, txn_id, response, created_ts) of the
        client transaction to record in the same write. Raises ``IntegrityError`` if that
        transaction is already recorded (nothing is then written)."""
        statements: list[Statement] = []
        if transaction is not None:
            user_id, device_id, endpoint, txn_id, response, created_ts = transaction
            statements.append(Statement(
                "INSERT INTO client_transactions (user_id, device_id, endpoint, txn_id,"
                " response, created_ts) VALUES ($1, $2, $3, $4, $5, $6)",
                (user_id, device_id, endpoint, txn_id, response.decode(), created_ts)))
        statements.extend(self._delivery_statements(sender, event_type, stream_id, deliveries))
        if statements:
            await self._db.write_batch(statements)

    async def add_received(self, origin: str, message_id: str, sender: str, event_type: str,
                           stream_id: int, deliveries: Sequence[tuple[str, str, bytes]],
                           received_ts: int) -> None:
        """Store an m.direct_to_device EDU's messages with its (origin, message_id) in one
        write. Raises ``IntegrityError`` (nothing written) if that message was stored before."""
        await self._db.write_batch([
            Statement("INSERT INTO to_device_federation_inbox (origin, message_id, received_ts)"
                      " VALUES ($1, $2, $3)", (origin, message_id, received_ts)),
            *self._delivery_statements(sender, event_type, stream_id, deliveries),
        ])

    async def prune_received(self, before_ts: int) -> int:
        """Forget message IDs received before ``before_ts``: no origin retries that long."""
        return await self._db.execute(
            "DELETE FROM to_device_federation_inbox WHERE received_ts < $1", before_ts)

    @staticmethod
    def _delivery_statements(sender: str, event_type: str, stream_id: int,
                             deliveries: Sequence[tuple[str, str, bytes]]) -> list[Statement]:
        if not deliveries:
            return []
        return [
            Statement(
                "INSERT INTO to_device_messages (user_id, device_id, stream_id, sender, type,"
                " content) VALUES ($1, $2, $3, $4, $5, $6)",
                [(user_id, device_id, stream_id, sender, event_type, content.decode())
                 for user_id, device_id, content in deliveries],
                many=True),
            Statement(
                "UPDATE to_device_stream SET stream_id = $1 WHERE id = 1 AND stream_id < $1",
                (stream_id,)),
        ]

    async def pending(self, user_id: str, device_id: str, upto: int,
                      limit: int) -> list[PendingMessage]:
        """Up to ``limit`` messages for the device with stream_id <= ``upto``, oldest first."""
        rows = await self._db.fetch(
            "SELECT stream_id, sender, type, content FROM to_device_messages"
            " WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3"
            " ORDER BY stream_id LIMIT $4",
            user_id, device_id, upto, limit,
        )
        return [PendingMessage(int(r["stream_id"]), r["sender"], r["type"],
                               dict(orjson.loads(r["content"]))) for r in rows]

    async def delete_upto(self, user_id: str, device_id: str, upto: int) -> int:
        return await self._db.execute(
            "DELETE FROM to_device_messages WHERE user_id = $1 AND device_id = $2"
            " AND stream_id <= $3",
            user_id, device_id, upto,
        )
