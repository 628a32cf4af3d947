"""Where media bytes live: content-addressed blobs, keyed by their SHA-256.

Naming a file by its hash makes duplicates free (the second upload of the same bytes finds the
blob already there) and makes a half-written blob impossible to mistake for a whole one: bytes
are first staged under ``tmp/``, hashed while they stream in, and only then renamed into place,
which is atomic on one filesystem. ``BlobStore`` is the interface the media service codes
against, so an object-store backend can replace ``FileBlobStore`` without touching it.

Sharing has one hazard: releasing a blob ("no row names it, so delete it") must not fall
between another request finding that blob already there and inserting the row that names it,
or that row would name deleted bytes. Both sides therefore run under the blob's lock
(``BlobStore.locks``): storing-and-naming on one side, checking-and-deleting on the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Protocol

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobLocks:
    """One asyncio lock per blob, made on first use and dropped once nobody holds or awaits it,
    so the table stays as small as the number of blobs being stored or released right now."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, sha256: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(sha256, asyncio.Lock())
        self._users[sha256] = self._users.get(sha256, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[sha256] -= 1
            if not self._users[sha256]:
                del self._users[sha256], self._locks[sha256]

    def __len__(self) -> int:
        return len(self._locks)


class BlobStore(Protocol):
    locks: BlobLocks  # held while a blob is stored and named, or checked and deleted

    def staging_file(self) -> Path:
        """A fresh path on local disk to stream an upload into before ``put_file``."""
        ...

    async def put_file(self, staged: Path, sha256: str) -> bool:
        """Take ownership of ``staged`` (its SHA-256 is ``sha256``); True if the blob is new."""
        ...

    async def put_bytes(self, data: bytes) -> str:
        """Store small content (thumbnails) and return its SHA-256."""
        ...

    def local_path(self, sha256: str) -> Path | None:
        """A file to serve with sendfile, or None when the blob is not on local disk."""
        ...

    def materialize(self, sha256: str) -> contextlib.AbstractAsyncContextManager[Path]:
        """A local file with the blob's bytes for the duration of the block (for decoders)."""
        ...

    async def delete(self, sha256: str) -> None:
        ...

    async def exists(self, sha256: str) -> bool:
        ...

    def clear_staging(self) -> int:
        """Remove staged files a crash left behind; returns how many."""
        ...


class FileBlobStore:
    """Blobs as files under ``root/ab/cd/<sha256>``; staging under ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.locks = BlobLocks()
        self._staging = root / "tmp"
        self._staging.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):  # never let a stored value steer a path
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def staging_file(self) -> Path:
        return self._staging / uuid.uuid4().hex

    async def put_file(self, staged: Path, sha256: str) -> bool:
        return await asyncio.to_thread(self._put_file, staged, sha256)

    def _put_file(self, staged: Path, sha256: str) -> bool:
        target = self._path(sha256)
        if target.exists():
            staged.unlink(missing_ok=True)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(staged, "rb") as f:
            os.fsync(f.fileno())
        os.replace(staged, target)
        _fsync_dir(target.parent)
        return True

    async def put_bytes(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._put_bytes, data, sha256)
        return sha256

    def _put_bytes(self, data: bytes, sha256: str) -> None:
        if self._path(sha256).exists():
            return
        staged = self.staging_file()
        try:
            with open(staged, "wb") as f:
                f.write(data)
            self._put_file(staged, sha256)
        finally:
            staged.unlink(missing_ok=True)

    def local_path(self, sha256: str) -> Path | None:
        return self._path(sha256)

    @contextlib.asynccontextmanager
    async def materialize(self, sha256: str) -> AsyncIterator[Path]:
        yield self._path(sha256)

    async def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    async def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def clear_staging(self) -> int:
        removed = 0
        for leftover in self._staging.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed


async def release_if_unused(blobs: BlobStore, sha256: str,
                            in_use: Callable[[str], Awaitable[bool]]) -> bool:
    """Delete the blob unless a row still names it; True if deleted. Takes the blob's lock, so
    it waits for any request that is between storing this blob and naming it."""
    async with blobs.locks.hold(sha256):
        return await delete_unused_locked(blobs, sha256, in_use)


async def delete_unused_locked(blobs: BlobStore, sha256: str,
                               in_use: Callable[[str], Awaitable[bool]]) -> bool:
    """``release_if_unused`` for a caller already holding the blob's lock."""
    if await in_use(sha256):
        return False
    await blobs.delete(sha256)
    return True


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable, not only the file's bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedUpload:
    """An upload being written to a staging file: hashed and size-checked as it streams."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.size = 0
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self._file: IO[bytes] | None = open(path, "wb")  # noqa: SIM115 - closed in finish/discard

    def write(self, chunk: bytes) -> bool:
        """Append ``chunk``; False (and nothing written) once the limit would be passed."""
        if self.size + len(chunk) > self._max:
            return False
        assert self._file is not None
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)
        return True

    def finish(self) -> str:
        """Close the file and return the content's SHA-256."""
        assert self._file is not None
        self._file.close()
        self._file = None
        return self._hash.hexdigest()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)
