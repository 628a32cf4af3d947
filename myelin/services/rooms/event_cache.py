"""The in-memory cache of recent events, by event ID.

A PDU never changes (a redaction is applied when an event is served, not to the stored
PDU), so a cached event never goes stale; the timeline only drops events whose write
failed. Every event persisted goes in, as do events read from the database: the newest are
what auth, /sync, receipts and relations ask for again. Oldest out first.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

from myelin.core.events import PDU

DEFAULT_SIZE = 20_000  # events; ~1.6-2 KB each for a plain message

# Top-level fields whose values repeat across a room's events: cached events share one copy.
_SHARED_FIELDS = ("room_id", "sender", "type")


class EventCache:
    """At most ``size`` events, first in first out."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._events: OrderedDict[str, PDU] = OrderedDict()

    def get(self, event_id: str) -> PDU | None:
        return self._events.get(event_id)

    def put(self, pdu: PDU) -> None:
        _share_strings(pdu.data)
        self._events[pdu.event_id] = pdu
        if len(self._events) > self._size:
            self._events.popitem(last=False)

    def discard(self, event_id: str) -> None:
        self._events.pop(event_id, None)

    def __len__(self) -> int:
        return len(self._events)


def _share_strings(data: dict[str, Any]) -> None:
    """Make the event's room ID, sender and type the interned copies: an event decoded from
    a request, the database or federation has its own copies otherwise (~200 bytes an
    event, ~10% of a cached message). Equal strings, so nothing can tell."""
    for name in _SHARED_FIELDS:
        value = data.get(name)
        if type(value) is str:
            data[name] = sys.intern(value)
