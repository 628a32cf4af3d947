"""The recent-events cache: bounded, oldest out first, and its events share repeated strings."""

from __future__ import annotations

import orjson

from myelin.core.events import PDU
from myelin.core.room_versions import V11
from myelin.services.rooms.event_cache import EventCache


def pdu(n: int) -> PDU:
    # Decoded from JSON, as from the database or federation: every event has its own copies.
    data = orjson.loads(orjson.dumps({
        "type": "m.room.message", "room_id": "!room:example.org", "sender": "@a:example.org",
        "content": {"body": str(n)}, "depth": n, "origin_server_ts": n,
        "prev_events": [], "auth_events": [], "hashes": {"sha256": "x"}, "signatures": {}}))
    return PDU(data, V11, event_id=f"$event{n}")


def test_oldest_out_first() -> None:
    cache = EventCache(size=3)
    for n in range(5):
        cache.put(pdu(n))
    assert len(cache) == 3
    assert cache.get("$event0") is None and cache.get("$event1") is None
    kept = [cache.get(f"$event{n}") for n in (2, 3, 4)]
    assert [p.content["body"] if p else None for p in kept] == ["2", "3", "4"]
    cache.discard("$event3")
    cache.discard("$unknown")
    assert cache.get("$event3") is None and len(cache) == 2


def test_cached_events_share_room_sender_and_type() -> None:
    cache = EventCache()
    first, second = pdu(1), pdu(2)
    assert first.data["room_id"] is not second.data["room_id"]
    cache.put(first)
    cache.put(second)
    for name in ("room_id", "sender", "type"):
        assert first.data[name] is second.data[name]
    assert first.data == pdu(1).data  # nothing else changed
