"""Deleting media: expired reservations, and media nobody downloaded for the configured time.

Rows go first, blobs after, and a blob is deleted only when no remaining row names it: since
identical files share one blob, deleting one upload must not take another's bytes with it; the
check and the delete hold the blob's lock, so an upload of the same bytes that has found the
blob but not yet written its row is waited for, not robbed (within this process: the lock does
not reach a separate ``myelin purge-media`` run). The server runs this hourly;
``myelin purge-media`` runs it once, with its own limits if given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from myelin.config import MediaConfig
from myelin.services.media.blobs import BlobStore, release_if_unused
from myelin.storage.stores.media import MediaStore

log = logging.getLogger("myelin.media")

DAY_MS = 24 * 3600 * 1000
BATCH = 500


@dataclass
class PurgeReport:
    expired_reservations: int = 0
    local_media: int = 0
    remote_media: int = 0
    blobs_deleted: int = 0
    previews: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class MediaRetention:
    def __init__(self, store: MediaStore, blobs: BlobStore, config: MediaConfig,
                 server_name: str, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._blobs = blobs
        self._config = config
        self._server_name = server_name
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def purge(self, *, local_days: float | None = None,
                    remote_days: float | None = None) -> PurgeReport:
        """One pass; ``None`` takes the configured retention, 0 keeps that kind forever."""
        local_days = self._config.local_retention_days if local_days is None else local_days
        remote_days = self._config.remote_retention_days if remote_days is None else remote_days
        now = int(self._clock() * 1000)
        report = PurgeReport()
        report.expired_reservations = await self._delete_all(
            lambda: self._store.expired_pending(now, BATCH), report)
        if local_days > 0:
            before = now - int(local_days * DAY_MS)
            report.local_media = await self._delete_all(
                lambda: self._store.not_accessed_since(
                    local_origin=self._server_name, local=True, before_ms=before, limit=BATCH),
                report)
        if remote_days > 0:
            before = now - int(remote_days * DAY_MS)
            report.remote_media = await self._delete_all(
                lambda: self._store.not_accessed_since(
                    local_origin=self._server_name, local=False, before_ms=before, limit=BATCH),
                report)
        report.previews = await self._store.purge_previews(now)
        return report

    async def _delete_all(self, batch: Callable[[], Awaitable[list[tuple[str, str]]]],
                          report: PurgeReport) -> int:
        deleted = 0
        while True:
            refs = await batch()
            if not refs:
                return deleted
            for origin, media_id in refs:
                for sha256 in await self._store.delete(origin, media_id):
                    if await release_if_unused(self._blobs, sha256, self._store.blob_in_use):
                        report.blobs_deleted += 1
                deleted += 1

    def start(self, interval_s: float = 3600.0) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(interval_s))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, interval_s: float) -> None:
        while True:
            try:
                report = await self.purge()
                if any(report.as_dict().values()):
                    log.info("media retention: %s", report.as_dict())
            except Exception:
                log.exception("media retention pass failed")
            await asyncio.sleep(interval_s)
