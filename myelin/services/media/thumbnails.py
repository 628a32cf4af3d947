"""Choosing, making and caching thumbnails (client-server API, "Thumbnails").

The configured sizes are made once, right after an upload, so the sizes clients ask for most
are ready before anyone asks. Any other size is made on first request and kept up to a cap per
image, so odd sizes cannot fill the disk. Whatever is served is never smaller than asked for
(unless the original is) and never upscaled; an original that already fits is served as it is.
Decoding runs in threads, a few at a time, so a burst of big images cannot starve the loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from myelin.config import MediaConfig, parse_thumbnail_size
from myelin.errors import MatrixError, not_found, too_large
from myelin.services.media.blobs import BlobStore, delete_unused_locked, sha256_of
from myelin.services.media.thumbnailer import (
    THUMBNAIL_CONTENT_TYPES,
    ImageInfo,
    ImageTooLarge,
    Thumbnail,
    ThumbnailError,
    make_thumbnail,
    output_size,
    probe,
)
from myelin.storage.stores.media import MediaRecord, MediaStore, ThumbnailRecord

log = logging.getLogger("myelin.media")

MAX_REQUEST_DIMENSION = 10_000


@dataclass(frozen=True, slots=True)
class ThumbnailRequest:
    width: int
    height: int
    method: str  # "crop" or "scale"
    animated: bool


@dataclass(frozen=True, slots=True)
class ServedImage:
    """What to send back: a stored blob, or bytes made for this request only."""

    content_type: str
    sha256: str | None = None
    data: bytes | None = None


def missing_blob() -> MatrixError:
    return not_found("The content of this media is missing from storage")


def cannot_thumbnail() -> MatrixError:
    return MatrixError(400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content")


class ThumbnailService:
    def __init__(self, store: MediaStore, blobs: BlobStore, config: MediaConfig, *,
                 concurrency: int = 2) -> None:
        self._store = store
        self._blobs = blobs
        self._config = config
        self._configured = [size for spec in config.thumbnail_sizes
                            if (size := parse_thumbnail_size(spec)) is not None]
        self._slots = asyncio.Semaphore(concurrency)
        # One generation per (media, size) at a time; later askers await the same future.
        self._in_flight: dict[tuple[object, ...], asyncio.Future[ServedImage]] = {}

    async def thumbnail(self, record: MediaRecord, request: ThumbnailRequest) -> ServedImage:
        assert record.sha256 is not None
        info = await self._probe(record.sha256)
        animated = request.animated and info.animated
        fits = info.width <= request.width and info.height <= request.height
        if fits and info.content_type in THUMBNAIL_CONTENT_TYPES and (animated or
                                                                      not info.animated):
            # "When the content is smaller than the requested dimensions, servers should
            # return the original content" - with the type we detected, not the one claimed.
            return ServedImage(info.content_type, sha256=record.sha256)
        width, height, configured = self._target(info, request)
        for thumb in await self._store.thumbnails(record.origin, record.media_id):
            if (thumb.width, thumb.height, thumb.method, thumb.animated) == (
                    width, height, request.method, animated):
                return ServedImage(thumb.content_type, sha256=thumb.sha256)
        key = (record.origin, record.media_id, width, height, request.method, animated)
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ServedImage] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            served = await self._generate(record, width, height, request.method, animated,
                                          configured)
            future.set_result(served)
            return served
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._in_flight[key]

    def _target(self, info: ImageInfo, request: ThumbnailRequest) -> tuple[int, int, bool]:
        """The smallest configured size whose result is at least what was asked for; else the
        requested size itself."""
        needed = output_size(info.width, info.height, request.width, request.height,
                             request.method)
        best: tuple[int, int, int] | None = None
        for width, height, method in self._configured:
            if method != request.method:
                continue
            out_w, out_h = output_size(info.width, info.height, width, height, method)
            if method == "crop" and width * request.height != height * request.width:
                continue  # a crop must keep the requested aspect ratio
            if out_w >= needed[0] and out_h >= needed[1]:
                area = out_w * out_h
                if best is None or area < best[0]:
                    best = (area, width, height)
        if best is not None:
            return best[1], best[2], True
        return request.width, request.height, False

    async def _generate(self, record: MediaRecord, width: int, height: int, method: str,
                        animated: bool, configured: bool) -> ServedImage:
        assert record.sha256 is not None
        thumb = await self._make(record.sha256, width, height, method, animated)
        cached = await self._store.thumbnails(record.origin, record.media_id)
        keep = configured or (sum(not t.configured for t in cached)
                              < self._config.max_cached_thumbnails)
        if not keep:
            return ServedImage(thumb.content_type, data=thumb.data)
        sha256 = sha256_of(thumb.data)
        # Under the blob's lock, like an upload: see ``blobs`` for the race this closes.
        async with self._blobs.locks.hold(sha256):
            await self._blobs.put_bytes(thumb.data)
            try:
                await self._store.add_thumbnail(record.origin, record.media_id, ThumbnailRecord(
                    width, height, method, animated, thumb.content_type, thumb.width,
                    thumb.height, len(thumb.data), sha256, configured))
            except BaseException:
                await delete_unused_locked(self._blobs, sha256, self._store.blob_in_use)
                raise
        return ServedImage(thumb.content_type, sha256=sha256)

    async def _probe(self, sha256: str) -> ImageInfo:
        try:
            async with self._blobs.materialize(sha256) as path:
                return await asyncio.to_thread(probe, path,
                                               max_pixels=self._config.max_image_pixels)
        except ImageTooLarge:
            raise too_large("Content is too large to thumbnail") from None
        except ThumbnailError:
            raise cannot_thumbnail() from None
        except FileNotFoundError:  # the row outlived its blob: a damaged store
            raise missing_blob() from None

    async def _make(self, sha256: str, width: int, height: int, method: str,
                    animated: bool) -> Thumbnail:
        try:
            async with self._slots, self._blobs.materialize(sha256) as path:
                return await asyncio.to_thread(
                    make_thumbnail, path, width, height, method, animated=animated,
                    max_pixels=self._config.max_image_pixels)
        except ImageTooLarge:
            raise too_large("Content is too large to thumbnail") from None
        except ThumbnailError:
            raise cannot_thumbnail() from None
        except FileNotFoundError:  # the row outlived its blob: a damaged store
            raise missing_blob() from None

    async def make_configured(self, record: MediaRecord) -> None:
        """After an upload: the configured sizes of an image (nothing for other content)."""
        if record.sha256 is None or not (record.content_type or "").startswith("image/"):
            return
        try:
            info = await self._probe(record.sha256)
        except MatrixError:
            return  # not an image we can decode: thumbnail requests will say so
        for width, height, method in self._configured:
            if info.width <= width and info.height <= height:
                continue  # the original itself is served for this size
            try:
                await self.thumbnail(record, ThumbnailRequest(width, height, method, False))
            except MatrixError:
                return

