"""Uploads and downloads: the mxc:// namespace of this server (client-server API, "Content
repository").

An upload streams into a staging file while it is hashed and size-checked, becomes a blob only
once it is complete, and gets its database row last: whatever fails on the way, no row ever
names a partial file and no staged file outlives the request. Becoming a blob and getting the
row happen under the blob's lock (see ``blobs``), so a concurrent release of identical bytes
cannot delete the blob in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from myelin.config import MediaConfig
from myelin.errors import MatrixError, forbidden, not_found, too_large
from myelin.ids import is_valid_server_name
from myelin.services.media.blobs import (
    BlobLocks,
    BlobStore,
    StagedUpload,
    delete_unused_locked,
    sha256_of,
)
from myelin.storage.database import IntegrityError
from myelin.storage.stores.media import MediaRecord, MediaStore

if TYPE_CHECKING:
    from myelin.services.media.thumbnails import ThumbnailRequest

log = logging.getLogger("myelin.media")

_MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_ID_ALPHABET = string.ascii_letters + string.digits
_CONTENT_TYPE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_FILENAME_CHARS = 1000
MAX_WAIT_MS = 60_000  # the spec asks for a cap on a download's timeout_ms
DEFAULT_WAIT_MS = 20_000

T = TypeVar("T")


def not_yet_uploaded() -> MatrixError:
    return MatrixError(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")


def too_large_remote() -> MatrixError:
    """Another server's content past our limits (bytes or pixels): 502, not the 413 of local
    content (client-server API, GET /media/download and /media/thumbnail responses)."""
    return MatrixError(502, "M_TOO_LARGE", "The remote content is too large to fetch")


def parse_media_ref(server_name: str, media_id: str) -> tuple[str, str]:
    """Sanitise an mxc:// URI's parts ("Security considerations": only valid server names and
    ``[A-Za-z0-9_-]`` media IDs, so no ID can ever reach a path or a query unescaped)."""
    if not is_valid_server_name(server_name) or not _MEDIA_ID.match(media_id):
        raise not_found("Unknown media")
    return server_name, media_id


def check_upload_metadata(content_type: str | None, filename: str | None) -> str:
    """The content type to store (the spec's default when absent); refuses unusable values."""
    if content_type is None or not content_type.strip():
        content_type = DEFAULT_CONTENT_TYPE
    if not _CONTENT_TYPE.match(content_type):
        raise MatrixError(400, "M_INVALID_PARAM", "Content-Type header is not a valid media type")
    if filename is not None and (len(filename) > MAX_FILENAME_CHARS or "\x00" in filename):
        raise MatrixError(400, "M_INVALID_PARAM", "filename is too long or contains NUL")
    return content_type


class RemoteFetcher(Protocol):
    async def fetch(self, server_name: str, media_id: str,
                    timeout_ms: int) -> tuple[bytes, str, str | None]: ...

    async def fetch_thumbnail(self, server_name: str, media_id: str, request: ThumbnailRequest,
                              timeout_ms: int) -> tuple[bytes, str] | None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Upload:
    """What a client sends: the bytes as a stream plus the headers that describe them."""

    chunks: AsyncIterator[bytes]
    content_type: str | None
    filename: str | None
    declared_length: int | None


class MediaRepository:
    def __init__(self, store: MediaStore, blobs: BlobStore, config: MediaConfig,
                 server_name: str, *,
                 on_stored: Callable[[MediaRecord], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._blobs = blobs
        self._config = config
        self.server_name = server_name
        self._on_stored = on_stored
        self._clock = clock
        # Downloads waiting for a reserved ID's upload, woken when it lands (one process).
        self._waiters: dict[tuple[str, str], asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Per user: the last quota check and the row it admits happen under one lock, so
        # concurrent uploads cannot each see the same room (BlobLocks are keyed locks).
        self._quota_locks = BlobLocks()
        # Set by the federation layer: fetches other servers' media.
        self.remote: RemoteFetcher | None = None

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    async def close(self) -> None:
        """Wait for the post-upload work (thumbnails) still running; close the connections
        the remote fetcher keeps (it opens new ones if used again)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.remote is not None:
            await self.remote.close()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def public_config(self) -> dict[str, int]:
        return {"m.upload.size": self._config.max_upload_bytes}

    # -- uploads ---------------------------------------------------------------------------

    async def upload(self, user_id: str, upload: Upload) -> str:
        """POST /upload: store the bytes under a new media ID; returns its mxc:// URI."""
        content_type = check_upload_metadata(upload.content_type, upload.filename)

        async def add_row(sha256: str, size: int) -> str:
            now = self._now_ms()
            while True:
                media_id = _new_media_id()
                try:
                    await self._store.add_uploaded(
                        self.server_name, media_id, user_id=user_id, content_type=content_type,
                        upload_name=upload.filename, size=size, sha256=sha256, now_ms=now,
                        authenticated=self._config.freeze_unauthenticated)
                    return media_id
                except IntegrityError:  # 2^143 IDs: a collision means retry, not fail
                    continue

        media_id = await self._stage_and_store(user_id, upload, add_row)
        self._stored(self.server_name, media_id)
        return f"mxc://{self.server_name}/{media_id}"

    async def store_fetched(self, data: bytes, content_type: str,
                            filename: str | None) -> tuple[str, str]:
        """Keep bytes the server fetched itself (a preview's image) as local media owned by no
        user, so it counts against nobody's quota. Returns (mxc URI, media ID)."""
        content_type = check_upload_metadata(content_type, filename)
        media_id = _new_media_id()
        await self._put_bytes_and_name(data, self.server_name, media_id, content_type, filename)
        self._stored(self.server_name, media_id)
        return f"mxc://{self.server_name}/{media_id}", media_id

    async def reserve(self, user_id: str) -> tuple[str, int]:
        """POST /create: a media ID whose bytes come later; returns (mxc URI, expiry)."""
        now = self._now_ms()
        if await self._store.pending_count(user_id, now) >= self._config.max_pending_uploads:
            raise MatrixError(429, "M_LIMIT_EXCEEDED",
                              "Too many media IDs reserved and not yet uploaded",
                              headers={"Retry-After": "60"}, retry_after_ms=60_000)
        expires = now + self._config.pending_upload_lifetime_s * 1000
        media_id = _new_media_id()
        await self._store.reserve(self.server_name, media_id, user_id=user_id, now_ms=now,
                                  expires_ts=expires,
                                  authenticated=self._config.freeze_unauthenticated)
        return f"mxc://{self.server_name}/{media_id}", expires

    async def upload_reserved(self, user_id: str, server_name: str, media_id: str,
                              upload: Upload) -> None:
        """PUT /upload/{serverName}/{mediaId}: the bytes of an ID reserved with /create."""
        content_type = check_upload_metadata(upload.content_type, upload.filename)
        record = await self._reservation(user_id, server_name, media_id)

        async def fill(sha256: str, size: int) -> None:
            filled = await self._store.complete_reserved(
                record.origin, record.media_id, content_type=content_type,
                upload_name=upload.filename, size=size, sha256=sha256, now_ms=self._now_ms())
            if not filled:  # another upload to the same ID won the race
                raise _cannot_overwrite()

        await self._stage_and_store(user_id, upload, fill)
        self._stored(record.origin, record.media_id)

    async def _reservation(self, user_id: str, server_name: str, media_id: str) -> MediaRecord:
        parse_media_ref(server_name, media_id)
        record = await self._store.get(server_name, media_id)
        if record is None or server_name != self.server_name:
            raise not_found("Unknown media ID")
        if record.user_id != user_id:
            raise forbidden("This media ID was reserved by another user")
        if not record.pending:
            raise _cannot_overwrite()
        if record.expires_ts is not None and record.expires_ts <= self._now_ms():
            raise not_found("This media ID has expired")
        return record

    async def check_upload_size(self, user_id: str, declared_length: int | None) -> None:
        """Refuse an upload whose declared size is past the size limit or the user's quota
        room, before its body is read: the endpoints call it before answering ``Expect:
        100-continue``, so a client over quota learns it without sending the file."""
        limit, quota_bound = await self._upload_limit(user_id)
        if declared_length is not None and declared_length > limit:
            raise _over_limit(quota_bound)

    async def _upload_limit(self, user_id: str) -> tuple[int, bool]:
        """(bytes the user may upload now, whether the quota rather than the size limit is
        what bounds it)."""
        limit, quota_bound = self._config.max_upload_bytes, False
        if self._config.user_quota_bytes:
            room = self._config.user_quota_bytes - await self._store.stored_bytes(user_id)
            if room < 0:  # already over (quota lowered, or racing uploads): even 0 bytes
                raise _over_limit(True)
            if room < limit:
                limit, quota_bound = room, True
        return limit, quota_bound

    async def _stage_and_store(self, user_id: str, upload: Upload,
                               add_row: Callable[[str, int], Awaitable[T]]) -> T:
        """Stream the body to a staging file under the size and quota limits, then make it a
        blob named by ``add_row(sha256, size)``; returns what ``add_row`` returns. The limits
        are checked again here: the quota may have shrunk since ``check_upload_size``."""
        limit, quota_bound = await self._upload_limit(user_id)
        if upload.declared_length is not None and upload.declared_length > limit:
            raise _over_limit(quota_bound)
        staged = StagedUpload(self._blobs.staging_file(), limit)
        try:
            async for chunk in upload.chunks:
                if not staged.write(chunk):
                    raise _over_limit(quota_bound)
            sha256 = staged.finish()
            if not self._config.user_quota_bytes:
                return await self._put_and_name(
                    sha256, lambda: self._blobs.put_file(staged.path, sha256),
                    lambda: add_row(sha256, staged.size))
            async with self._quota_locks.hold(user_id):
                stored = await self._store.stored_bytes(user_id)
                if stored + staged.size > self._config.user_quota_bytes:
                    raise _over_limit(True)
                return await self._put_and_name(
                    sha256, lambda: self._blobs.put_file(staged.path, sha256),
                    lambda: add_row(sha256, staged.size))
        finally:
            staged.discard()  # a no-op once put_file moved it

    async def _put_and_name(self, sha256: str, put: Callable[[], Awaitable[object]],
                            name: Callable[[], Awaitable[T]]) -> T:
        """Store a blob and insert the row naming it, both under the blob's lock: a release of
        the same bytes (which checks that no row names them, then deletes) takes that lock
        too, so it cannot slip between a ``put`` that found the blob already there and the
        row. If naming fails, the blob goes again unless something else names it."""
        async with self._blobs.locks.hold(sha256):
            await put()
            try:
                return await name()
            except BaseException:
                await delete_unused_locked(self._blobs, sha256, self._store.blob_in_use)
                raise

    async def _put_bytes_and_name(self, data: bytes, origin: str, media_id: str,
                                  content_type: str, filename: str | None) -> None:
        """Bytes the server got itself (a preview's image, a remote file) as media owned by no
        user."""
        sha256 = await asyncio.to_thread(sha256_of, data)

        async def add_row() -> None:
            await self._store.add_uploaded(
                origin, media_id, user_id=None, content_type=content_type,
                upload_name=filename, size=len(data), sha256=sha256, now_ms=self._now_ms(),
                authenticated=self._config.freeze_unauthenticated)

        await self._put_and_name(sha256, lambda: self._blobs.put_bytes(data), add_row)

    def _stored(self, origin: str, media_id: str) -> None:
        waiter = self._waiters.pop((origin, media_id), None)
        if waiter is not None:
            waiter.set()
        if self._on_stored is not None:
            task = asyncio.get_running_loop().create_task(self._notify_stored(origin, media_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _notify_stored(self, origin: str, media_id: str) -> None:
        try:
            record = await self._store.get(origin, media_id)
            if record is not None and self._on_stored is not None:
                await self._on_stored(record)
        except Exception:
            log.exception("post-upload processing of %s/%s failed", origin, media_id)

    # -- downloads -------------------------------------------------------------------------

    async def find(self, server_name: str, media_id: str, *, timeout_ms: int = DEFAULT_WAIT_MS,
                   unauthenticated: bool = False, allow_remote: bool = True) -> MediaRecord:
        """The uploaded media behind an mxc:// URI, waiting up to ``timeout_ms`` for a reserved
        ID's upload. ``unauthenticated``: asked through a deprecated endpoint, which only sees
        media stored before the freeze. ``allow_remote=False`` (deprecated endpoints' query
        parameter, against routing loops): serve remote media only if already cached."""
        server_name, media_id = parse_media_ref(server_name, media_id)
        record = await self._store.get(server_name, media_id)
        if record is None and self._may_fetch(server_name, unauthenticated, allow_remote):
            record = await self._cache_remote(server_name, media_id, timeout_ms)
        if record is None or (unauthenticated and record.authenticated):
            raise not_found("Unknown media")
        if record.pending:
            record = await self._wait_for_upload(record, min(max(timeout_ms, 0), MAX_WAIT_MS))
        await self._touch(record)
        return record

    async def cached(self, server_name: str, media_id: str) -> MediaRecord | None:
        """The media if its bytes are held here - never a federation request - with its access
        time kept for retention as ``find`` does. For the thumbnail of another server's media:
        with the original at hand, no need to ask that server."""
        record = await self._store.get(*parse_media_ref(server_name, media_id))
        if record is None or record.pending or record.sha256 is None:
            return None
        await self._touch(record)
        return record

    async def _touch(self, record: MediaRecord) -> None:
        now = self._now_ms()
        if now - record.last_access_ts > 60_000:  # retention needs only coarse access times
            await self._store.touch(record.origin, record.media_id, now)

    def _may_fetch(self, server_name: str, unauthenticated: bool, allow_remote: bool) -> bool:
        """Whether media not held here may be fetched from its server.

        Under the freeze, what an unauthenticated request would cache counts as stored now and
        is frozen, so it would be refused after the download: refuse before it instead, so
        no-token requests cannot make this server fetch (and store) other servers' media.
        """
        if server_name == self.server_name or self.remote is None or not allow_remote:
            return False
        return not (unauthenticated and self._config.freeze_unauthenticated)

    async def _cache_remote(self, server_name: str, media_id: str,
                            timeout_ms: int) -> MediaRecord | None:
        """Fetch another server's media once and keep it like an upload (its cache time
        counts as its upload time, so the freeze applies to it as the spec says)."""
        assert self.remote is not None
        data, content_type, filename = await self.remote.fetch(server_name, media_id,
                                                               min(timeout_ms, MAX_WAIT_MS))
        if not _CONTENT_TYPE.match(content_type):
            content_type = DEFAULT_CONTENT_TYPE
        # IntegrityError: cached meanwhile by a concurrent request (our blob was released).
        with contextlib.suppress(IntegrityError):
            await self._put_bytes_and_name(data, server_name, media_id, content_type, filename)
        return await self._store.get(server_name, media_id)

    async def _wait_for_upload(self, record: MediaRecord, timeout_ms: int) -> MediaRecord:
        key = (record.origin, record.media_id)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            if record.expires_ts is not None and record.expires_ts <= self._now_ms():
                raise not_found("Unknown media")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise not_yet_uploaded()
            event = self._waiters.setdefault(key, asyncio.Event())
            # Re-read at least every 5 s: the upload may land through another process.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(remaining, 5.0))
            fresh = await self._store.get(*key)
            if fresh is None:
                raise not_found("Unknown media")
            if not fresh.pending:
                return fresh
            record = fresh


def _new_media_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def _cannot_overwrite() -> MatrixError:
    return MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded to this ID")


def _over_limit(quota_bound: bool) -> MatrixError:
    if quota_bound:
        return forbidden("Uploading this file would exceed your media storage quota")
    return too_large("File is larger than this server accepts")
