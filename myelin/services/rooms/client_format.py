"""How events look to clients (client-server API, "Room event format" / ClientEvent).

Shared by every service that serves events (sync, history, state), so they all agree.
"""

from __future__ import annotations

import time
from typing import Any

from myelin.core.events import PDU


def client_event(pdu: PDU, *, now_ms: int | None = None) -> dict[str, Any]:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    out: dict[str, Any] = {
        "type": pdu.type,
        "content": pdu.data.get("content", {}),
        "sender": pdu.sender,
        "event_id": pdu.event_id,
        "origin_server_ts": pdu.origin_server_ts,
        "room_id": pdu.room_id,
        "unsigned": {"age": max(0, now - pdu.origin_server_ts)},
    }
    if pdu.is_state:
        out["state_key"] = pdu.state_key
    if pdu.type == "m.room.redaction" and pdu.redacts is not None:
        # v11 moved "redacts" into content; both places are served for old and new clients.
        out["redacts"] = pdu.redacts
    return out
