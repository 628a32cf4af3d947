"""How events look to clients (client-server API, "Room event format" / ClientEvent).

Shared by every service that serves events (sync, history, state), so they all agree on the
client format, on redacted events (pruned, with ``unsigned.redacted_because``) and on the
``unsigned.transaction_id`` a device gets back for the events it sent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from myelin.core.events import PDU
from myelin.core.redaction import redact
from myelin.storage.stores.events import StoredEvent

GetPdus = Callable[[list[str]], Awaitable[dict[str, PDU]]]
Bundler = Callable[[Sequence[StoredEvent]], Awaitable[Mapping[str, dict[str, Any]]]]
"""Bundled aggregations ("Aggregations of child events") of served events for one viewer:
``unsigned["m.relations"]`` by event ID (events without any are left out)."""
BundlerFactory = Callable[[str, str | None], Bundler | None]
"""The bundler for a viewer (user ID, device ID), as a service that serves events holds it."""


def no_bundler(user_id: str, device_id: str | None) -> Bundler | None:
    """The BundlerFactory of a server without relations: nothing is bundled."""
    return None


def client_event(pdu: PDU, *, now_ms: int | None = None, transaction_id: str | None = None,
                 redacted_because: PDU | None = None) -> dict[str, Any]:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    data = pdu.data if redacted_because is None else redact(pdu.data, pdu.room_version)
    unsigned: dict[str, Any] = {"age": max(0, now - pdu.origin_server_ts)}
    out: dict[str, Any] = {
        "type": pdu.type,
        "content": data.get("content", {}),
        "sender": pdu.sender,
        "event_id": pdu.event_id,
        "origin_server_ts": pdu.origin_server_ts,
        "room_id": pdu.room_id,
        "unsigned": unsigned,
    }
    if pdu.is_state:
        out["state_key"] = pdu.state_key
    if pdu.type == "m.room.redaction" and pdu.redacts is not None:
        # v11 moved "redacts" into content; both places are served for old and new clients.
        out["redacts"] = pdu.redacts
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if redacted_because is not None:
        unsigned["redacted_because"] = client_event(redacted_because, now_ms=now)
    return out


async def serve_events(events: Sequence[StoredEvent], viewer: tuple[str, str] | None,
                       get_pdus: GetPdus, *,
                       bundler: Bundler | None = None) -> list[dict[str, Any]]:
    """Client format for stored events, as seen by ``viewer`` (user ID, device ID); with a
    ``bundler``, each carries its bundled aggregations in ``unsigned["m.relations"]``."""
    now = int(time.time() * 1000)
    redaction_ids = [e.redacted_by for e in events if e.redacted_by is not None]
    redactions = await get_pdus(redaction_ids) if redaction_ids else {}
    served = [
        client_event(
            e.pdu, now_ms=now,
            transaction_id=e.txn_id if viewer is not None and e.sender_device == viewer[1]
            and e.pdu.sender == viewer[0] else None,
            redacted_because=redactions.get(e.redacted_by) if e.redacted_by else None,
        )
        for e in events
    ]
    bundles = await bundler(events) if bundler is not None and events else {}
    for stored, event in zip(events, served, strict=True):
        if stored.pdu.event_id in bundles:
            event["unsigned"]["m.relations"] = bundles[stored.pdu.event_id]
    return served
