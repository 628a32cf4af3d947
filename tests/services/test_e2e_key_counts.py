"""The kept key counts: a read that raced a key write answers but is not kept."""

from __future__ import annotations

import asyncio
from typing import Any

from myelin.services.e2e_key_counts import E2eKeyCounts


class _GatedStore:
    """Key counts from a dict, each read held until ``release`` is set."""

    def __init__(self) -> None:
        self.otks: dict[str, int] = {"signed_curve25519": 5}
        self.release = asyncio.Event()
        self.reads = 0

    async def count_one_time_keys(self, user_id: str, device_id: str) -> dict[str, int]:
        self.reads += 1
        snapshot = dict(self.otks)
        await self.release.wait()
        return snapshot

    async def unused_fallback_algorithms(self, user_id: str, device_id: str) -> list[str]:
        return []


async def test_a_read_racing_a_write_is_not_kept() -> None:
    store = _GatedStore()
    counts = E2eKeyCounts(store)  # type: ignore[arg-type]
    read = asyncio.create_task(counts.get("@a:x", "D"))
    await asyncio.sleep(0)
    async with counts.writing("@a:x", ["D"]):
        store.otks = {"signed_curve25519": 4}
    store.release.set()
    assert (await read)[0] == {"signed_curve25519": 5}  # what it read, before the write
    assert (await counts.get("@a:x", "D"))[0] == {"signed_curve25519": 4}
    assert store.reads == 2


async def test_counts_are_kept_until_a_write_for_the_device() -> None:
    store: Any = _GatedStore()
    store.release.set()
    counts = E2eKeyCounts(store)
    await counts.get("@a:x", "D")
    await counts.get("@a:x", "D")
    assert store.reads == 1
    async with counts.writing("@a:x", ["OTHER"]):
        pass
    await counts.get("@a:x", "D")
    assert store.reads == 1  # another device's write leaves it
    async with counts.writing("@a:x", ["D"]):
        store.otks = {}
    assert (await counts.get("@a:x", "D"))[0] == {}
    assert store.reads == 2
