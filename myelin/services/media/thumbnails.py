"""Choosing, making and caching thumbnails (client-server API, "Thumbnails").

The configured sizes are made once, right after an upload, so the sizes clients ask for most
are ready before anyone asks. Any other size is made on first request and kept up to a cap per
image, so odd sizes cannot fill the disk. Whatever is served is never smaller than asked for
(unless the original is) and never upscaled; an original that already fits is served as it is.
Decoding runs in threads, a few at a time, so a burst of big images cannot starve the loop.

Another server's media is thumbnailed here only when its original is cached here anyway;
otherwise its server is asked for the thumbnail (server-server API, "Content Repository",
``GET /_matrix/federation/v1/media/thumbnail``), which is checked and cached like ours, keyed
by the size asked for, so a second request is served from here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from myelin.config import MediaConfig
from myelin.config_checks import parse_thumbnail_size
from myelin.errors import MatrixError, not_found, too_large
from myelin.services.media.blobs import BlobStore, delete_unused_locked, sha256_of
from myelin.services.media.image_info import (
    THUMBNAIL_CONTENT_TYPES,
    ImageInfo,
    ImageTooLarge,
    Thumbnail,
    ThumbnailError,
    make_thumbnail,
    output_size,
    probe,
    probe_bytes,
)
from myelin.services.media.repository import (
    MediaRepository,
    RemoteFetcher,
    parse_media_ref,
    too_large_remote,
)
from myelin.services.single_flight import SingleFlight
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


def _too_large(remote: bool) -> MatrixError:
    # Client-server API, GET /media/thumbnail: 413 for local content, 502 for remote content.
    return too_large_remote() if remote else too_large("Content is too large to thumbnail")


class ThumbnailService:
    def __init__(self, store: MediaStore, blobs: BlobStore, config: MediaConfig, *,
                 concurrency: int = 2) -> None:
        self._store = store
        self._blobs = blobs
        self._config = config
        self._configured = [size for spec in config.thumbnail_sizes
                            if (size := parse_thumbnail_size(spec)) is not None]
        self._slots = asyncio.Semaphore(concurrency)
        # One generation (or remote fetch) per (media, size) at a time.
        self._flights = SingleFlight()

    async def for_media(self, media: MediaRepository, server_name: str, media_id: str,
                        request: ThumbnailRequest, *, timeout_ms: int) -> ServedImage:
        """The authenticated thumbnail endpoint, for our media and other servers'.

        Other servers' media is thumbnailed here from the cached original if there is one,
        else asked from its server and cached. A server without the federation thumbnail
        endpoint (``404 M_UNRECOGNIZED``, older than Matrix 1.11) gets a fallback: the whole
        original is fetched (and cached) as a download would, and thumbnailed here.
        """
        server_name, media_id = parse_media_ref(server_name, media_id)
        remote = server_name != media.server_name
        record = await media.cached(server_name, media_id) if remote else None
        if record is None and remote and media.remote is not None:
            served = await self._remote(media.remote, server_name, media_id, request,
                                        timeout_ms)
            if served is not None:
                return served
        if record is None:
            record = await media.find(server_name, media_id, timeout_ms=timeout_ms)
        return await self.thumbnail(record, request, remote=remote)

    async def thumbnail(self, record: MediaRecord, request: ThumbnailRequest, *,
                        remote: bool = False) -> ServedImage:
        """A thumbnail made here from the stored original. ``remote``: the original is
        another server's, so an image past the pixel limit is a 502, not a 413."""
        assert record.sha256 is not None
        info = await self._probe(record.sha256, remote)
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
        return await self._flights.run(key, lambda: self._generate(
            record, width, height, request.method, animated, configured, remote))

    async def _remote(self, fetcher: RemoteFetcher, origin: str, media_id: str,
                      request: ThumbnailRequest, timeout_ms: int) -> ServedImage | None:
        """A thumbnail of another server's media that server made: from the cache, else
        fetched; ``None`` if that server has no thumbnail endpoint or sent something that is
        not a thumbnail we would serve (a static one was asked for and an animation came, a
        type browsers do not all show, or no image at all)."""
        wanted = (request.width, request.height, request.method, request.animated)
        for thumb in await self._store.thumbnails(origin, media_id):
            if (thumb.width, thumb.height, thumb.method, thumb.animated) == wanted:
                return ServedImage(thumb.content_type, sha256=thumb.sha256)
        return await self._flights.run(("remote", origin, media_id, *wanted), lambda: self._fetch(
            fetcher, origin, media_id, request, timeout_ms))

    async def _fetch(self, fetcher: RemoteFetcher, origin: str, media_id: str,
                     request: ThumbnailRequest, timeout_ms: int) -> ServedImage | None:
        fetched = await fetcher.fetch_thumbnail(origin, media_id, request, timeout_ms)
        if fetched is None:
            return None
        data = fetched[0]
        # Hostile input like an upload: decoded as far as the header, held to the pixel
        # limit, and served with the type detected rather than the one claimed, so another
        # server cannot have us serve a page or a decompression bomb as a "thumbnail".
        try:
            info = await asyncio.to_thread(probe_bytes, data,
                                           max_pixels=self._config.max_image_pixels)
        except ImageTooLarge:
            raise too_large_remote() from None
        except ThumbnailError:
            info = None
        if info is None or info.content_type not in THUMBNAIL_CONTENT_TYPES or (
                info.animated and not request.animated):
            # Not served, and not worth an error either: the original, made into a thumbnail
            # here, still answers the client.
            log.info("%s sent an unusable thumbnail of %s; thumbnailing the original", origin,
                     media_id)
            return None
        configured = (request.width, request.height, request.method) in self._configured
        thumb = Thumbnail(data, info.content_type, info.width, info.height, info.animated)
        return await self._keep(origin, media_id, request.width, request.height,
                                request.method, request.animated, thumb, configured)

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
                        animated: bool, configured: bool, remote: bool) -> ServedImage:
        assert record.sha256 is not None
        thumb = await self._make(record.sha256, width, height, method, animated, remote)
        return await self._keep(record.origin, record.media_id, width, height, method,
                                animated, thumb, configured)

    async def _keep(self, origin: str, media_id: str, width: int, height: int, method: str,
                    animated: bool, thumb: Thumbnail, configured: bool) -> ServedImage:
        """Store a thumbnail under its key, unless the image already has its share of
        unconfigured sizes: then it is served this once and not kept."""
        cached = await self._store.thumbnails(origin, media_id)
        keep = configured or (sum(not t.configured for t in cached)
                              < self._config.max_cached_thumbnails)
        if not keep:
            return ServedImage(thumb.content_type, data=thumb.data)
        sha256 = sha256_of(thumb.data)
        # Under the blob's lock, like an upload: see ``blobs`` for the race this closes.
        async with self._blobs.locks.hold(sha256):
            await self._blobs.put_bytes(thumb.data)
            try:
                await self._store.add_thumbnail(origin, media_id, ThumbnailRecord(
                    width, height, method, animated, thumb.content_type, thumb.width,
                    thumb.height, len(thumb.data), sha256, configured))
            except BaseException:
                await delete_unused_locked(self._blobs, sha256, self._store.blob_in_use)
                raise
        return ServedImage(thumb.content_type, sha256=sha256)

    async def _probe(self, sha256: str, remote: bool = False) -> ImageInfo:
        try:
            async with self._blobs.materialize(sha256) as path:
                return await asyncio.to_thread(probe, path,
                                               max_pixels=self._config.max_image_pixels)
        except ImageTooLarge:
            raise _too_large(remote) from None
        except ThumbnailError:
            raise cannot_thumbnail() from None
        except FileNotFoundError:  # the row outlived its blob: a damaged store
            raise missing_blob() from None

    async def _make(self, sha256: str, width: int, height: int, method: str,
                    animated: bool, remote: bool) -> Thumbnail:
        try:
            async with self._slots, self._blobs.materialize(sha256) as path:
                return await asyncio.to_thread(
                    make_thumbnail, path, width, height, method, animated=animated,
                    max_pixels=self._config.max_image_pixels)
        except ImageTooLarge:
            raise _too_large(remote) from None
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

