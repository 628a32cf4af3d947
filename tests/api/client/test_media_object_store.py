"""Serving blobs a storage backend does not keep on local disk (an object store): the
``BlobStore`` interface's ``local_path`` is ``None`` and ``materialize`` fetches a copy."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image

from myelin.services.media.blobs import FileBlobStore

from harness import RunningServer, logged_in_user
from media_helpers import DOWNLOAD, THUMBNAIL, upload_ok


class NotOnLocalDisk(FileBlobStore):
    """A FileBlobStore that behaves like a remote one: no path to serve from, only copies."""

    def __init__(self, inner: FileBlobStore) -> None:
        super().__init__(inner.root)
        self.locks = inner.locks
        self.copies = 0

    def local_path(self, sha256: str) -> Path | None:
        return None

    @contextlib.asynccontextmanager
    async def materialize(self, sha256: str) -> AsyncIterator[Path]:
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "blob"
            shutil.copyfile(self._path(sha256), copy)  # FileNotFoundError if gone
            self.copies += 1
            yield copy


def use_object_store(server: RunningServer) -> NotOnLocalDisk:
    services = server.services
    store = NotOnLocalDisk(services.media.blobs)  # type: ignore[arg-type]
    services.media._blobs = store
    services.thumbnails._blobs = store
    return store


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def test_download_range_and_thumbnail_from_a_non_local_store(
        homeserver: RunningServer) -> None:
    store = use_object_store(homeserver)
    alice = await logged_in_user(homeserver, "alice")
    ref = await upload_ok(alice, b"0123456789", "text/plain", "digits.txt")
    response = await alice.get(f"{DOWNLOAD}/{ref}")
    assert response.status == 200, response
    assert response.body == b"0123456789"
    assert response.headers["Content-Disposition"] == 'inline; filename="digits.txt"'
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    ranged = await alice.get(f"{DOWNLOAD}/{ref}", headers={"Range": "bytes=2-4"})
    assert (ranged.status, ranged.body) == (206, b"234")
    image = await upload_ok(alice, png(300, 200), "image/png")
    thumb = await alice.get(f"{THUMBNAIL}/{image}?width=32&height=32&method=crop")
    assert thumb.status == 200, thumb
    assert Image.open(io.BytesIO(thumb.body)).size == (32, 32)
    assert store.copies >= 3


async def test_missing_blob_in_a_non_local_store_is_a_matrix_404(
        homeserver: RunningServer) -> None:
    store = use_object_store(homeserver)
    alice = await logged_in_user(homeserver, "alice")
    ref = await upload_ok(alice, b"soon gone", "text/plain")
    sha256 = await homeserver.services.db.fetchval(
        "SELECT sha256 FROM media WHERE media_id = $1", ref.split("/")[1])
    store._path(sha256).unlink()
    response = await alice.get(f"{DOWNLOAD}/{ref}")
    assert response.status == 404, response
    assert response.json["errcode"] == "M_NOT_FOUND"
    assert "Content-Disposition" not in response.headers
