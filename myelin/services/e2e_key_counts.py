"""A device's one-time key counts and unused fallback key types, kept for /sync.

Every /sync response carries both (client-server API, "End-to-end encryption": "Extensions
to /sync"), and a long-polling client syncs after every event, while the keys change only
when the device uploads or someone claims one. Two queries per woken sync were ~5% of a
sync-fanout load; they are read once per device and kept until a key write for it.

A write forgets the device before it starts and again once it is done, and a read only keeps
what it read if no write began meanwhile: a read racing a write is answered, not kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from myelin.storage.stores.e2e_keys import E2eKeyStore

DeviceKey = tuple[str, str]  # (user ID, device ID)
KeyCounts = tuple[dict[str, int], list[str]]  # (one-time keys per algorithm, fallback types)
_MAX_DEVICES = 50_000


class E2eKeyCounts:
    def __init__(self, store: E2eKeyStore) -> None:
        self._store = store
        self._kept: dict[DeviceKey, KeyCounts] = {}
        self._writes_begun = 0

    async def get(self, user_id: str, device_id: str) -> KeyCounts:
        """The device's counts; the caller must not modify them."""
        key = (user_id, device_id)
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        begun = self._writes_begun
        counts = (await self._store.count_one_time_keys(user_id, device_id),
                  await self._store.unused_fallback_algorithms(user_id, device_id))
        if begun == self._writes_begun:
            if len(self._kept) >= _MAX_DEVICES:
                self._kept.clear()
            self._kept[key] = counts
        return counts

    @asynccontextmanager
    async def writing(self, user_id: str, device_ids: Sequence[str]) -> AsyncIterator[None]:
        """Wrap every write to the devices' one-time or fallback keys."""
        self._forget(user_id, device_ids)
        try:
            yield
        finally:
            self._forget(user_id, device_ids)

    def _forget(self, user_id: str, device_ids: Sequence[str]) -> None:
        self._writes_begun += 1
        for device_id in device_ids:
            self._kept.pop((user_id, device_id), None)
