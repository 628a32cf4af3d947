"""The one multi-table write for an event (the design's single ``append()`` ends here).

Everything an event changes (the event row and its DAG edges, a new state snapshot, the
room's current state and memberships, forward extremities, a new room, the client's
transaction ID, its m.relates_to relationship and thread) is written in ONE transaction:
after a crash either all of it is there or none of it, and a retransmitted client request
finds its transaction ID exactly when the event exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from myelin.core.events import PDU, StateKey
from myelin.storage.database import Database, Statement
from myelin.storage.stores.relations import relation_statements
from myelin.storage.stores.search import search_statements
from myelin.storage.stores.state import StateGroupWrite, state_group_statements


@dataclass(frozen=True)
class NewRoom:
    room_id: str
    room_version: str
    creator: str
    created_ts: int


@dataclass(frozen=True)
class ClientTransaction:
    user_id: str
    device_id: str
    endpoint: str
    txn_id: str
    response: bytes  # JSON
    created_ts: int


@dataclass(frozen=True)
class Membership:
    membership: str
    event_id: str
    stream_ordering: int


@dataclass(frozen=True)
class PersistEvent:
    pdu: PDU
    stream_ordering: int
    outlier: bool = False
    rejected_reason: str | None = None
    soft_failed: bool = False  # received, passes auth at its place but not now: kept, hidden
    state_group: int | None = None  # the state after the event
    new_state_group: StateGroupWrite | None = None
    current_state_changes: Mapping[StateKey, str | None] = field(default_factory=dict)
    membership_changes: Mapping[str, Membership] = field(default_factory=dict)  # by user ID
    extremities_replaced: Sequence[str] = ()  # become non-extremities
    becomes_extremity: bool = True  # False for a received event some known event already follows
    historical: bool = False  # backfilled: in the timeline, but room state and DAG tips untouched
    replaces_outlier: bool = False  # the event is stored as an outlier: turn that row into this
    new_room: NewRoom | None = None
    client_transaction: ClientTransaction | None = None
    applies_redaction: bool = False  # the event is a redaction that takes effect

    @property
    def in_timeline(self) -> bool:
        """Shown to clients and built upon: neither an outlier, rejected nor soft-failed."""
        return not self.outlier and self.rejected_reason is None and not self.soft_failed


async def persist_event(db: Database, item: PersistEvent) -> None:
    """Write everything the event changes, atomically, as one batch."""
    await db.write_batch(event_write(db.engine, item))


def event_write(engine: str, item: PersistEvent) -> list[Statement]:
    """Every statement of the event's write, with the full-text index rows (whose SQL
    depends on the engine): run them in one transaction, in this order."""
    return event_statements(item) + search_statements(engine, item)


def event_statements(item: PersistEvent) -> list[Statement]:
    pdu = item.pdu
    room_id = pdu.room_id
    out: list[Statement] = []
    if item.new_room is not None:
        room = item.new_room
        out.append(Statement(
            "INSERT INTO rooms (room_id, room_version, creator, created_ts)"
            " VALUES ($1, $2, $3, $4)",
            (room.room_id, room.room_version, room.creator, room.created_ts)))
    if item.new_state_group is not None:
        out += state_group_statements(item.new_state_group)
    if item.replaces_outlier:
        out.append(Statement(
            "UPDATE events SET stream_ordering = $2, outlier = $3, rejected_reason = $4,"
            " state_group = $5, soft_failed = $6 WHERE event_id = $1",
            (pdu.event_id, item.stream_ordering, item.outlier, item.rejected_reason,
             item.state_group, item.soft_failed)))
        if item.in_timeline and not item.historical:
            out += _room_statements(room_id, pdu.event_id, item)
        out += relation_statements(pdu, item.stream_ordering,
                                   applied_redaction=item.applies_redaction,
                                   in_timeline=item.in_timeline)
        return out
    out.append(Statement(
        "INSERT INTO events (event_id, room_id, stream_ordering, depth, type, state_key, sender,"
        " origin_server_ts, json, outlier, rejected_reason, state_group, sender_device, txn_id,"
        " soft_failed)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        (pdu.event_id, room_id, item.stream_ordering, pdu.depth, pdu.type, pdu.state_key,
         pdu.sender, pdu.origin_server_ts, orjson.dumps(pdu.data).decode(), item.outlier,
         item.rejected_reason, item.state_group,
         item.client_transaction.device_id if item.client_transaction else None,
         item.client_transaction.txn_id if item.client_transaction else None,
         item.soft_failed)))
    if item.applies_redaction and pdu.redacts is not None:
        out.append(Statement("INSERT INTO redactions (redacts, event_id) VALUES ($1, $2)",
                             (pdu.redacts, pdu.event_id)))
    if pdu.prev_event_ids:
        out.append(Statement(
            "INSERT INTO event_edges (event_id, prev_event_id) VALUES ($1, $2)",
            [(pdu.event_id, prev) for prev in dict.fromkeys(pdu.prev_event_ids)], many=True))
    if pdu.auth_event_ids:
        out.append(Statement(
            "INSERT INTO event_auth (event_id, auth_event_id) VALUES ($1, $2)",
            [(pdu.event_id, auth) for auth in dict.fromkeys(pdu.auth_event_ids)], many=True))
    if item.in_timeline and not item.historical:
        out += _room_statements(room_id, pdu.event_id, item)
    # After the redactions row: a redacted thread event no longer counts as thread activity.
    out += relation_statements(pdu, item.stream_ordering, applied_redaction=item.applies_redaction,
                               in_timeline=item.in_timeline)
    if item.client_transaction is not None:
        ct = item.client_transaction
        out.append(Statement(
            "INSERT INTO client_transactions (user_id, device_id, endpoint, txn_id, response,"
            " created_ts) VALUES ($1, $2, $3, $4, $5, $6)",
            (ct.user_id, ct.device_id, ct.endpoint, ct.txn_id, ct.response.decode(),
             ct.created_ts)))
    return out


def _room_statements(room_id: str, event_id: str, item: PersistEvent) -> list[Statement]:
    out: list[Statement] = []
    if item.extremities_replaced:
        out.append(Statement(
            "DELETE FROM forward_extremities WHERE room_id = $1 AND event_id = $2",
            [(room_id, e) for e in item.extremities_replaced], many=True))
    if item.becomes_extremity:
        out.append(Statement(
            "INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $2)",
            (room_id, event_id)))
    removed = [(room_id, k[0], k[1]) for k, v in item.current_state_changes.items() if v is None]
    changed = [(room_id, k[0], k[1], v) for k, v in item.current_state_changes.items()
               if v is not None]
    if removed:
        out.append(Statement(
            "DELETE FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3",
            removed, many=True))
    if changed:
        out.append(Statement(
            "INSERT INTO current_state (room_id, type, state_key, event_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, type, state_key)"
            " DO UPDATE SET event_id = excluded.event_id",
            changed, many=True))
    if item.membership_changes:
        out.append(Statement(
            "INSERT INTO room_memberships (room_id, user_id, membership, event_id,"
            " stream_ordering) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, user_id)"
            " DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id,"
            " stream_ordering = excluded.stream_ordering, forgotten = FALSE",
            [(room_id, user, m.membership, m.event_id, m.stream_ordering)
             for user, m in item.membership_changes.items()], many=True))
    return out
