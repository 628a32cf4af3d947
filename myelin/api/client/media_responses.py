"""How media goes over the wire: request bodies in, files out, with the spec's safety headers.

Shared by the authenticated endpoints and the deprecated ``/_matrix/media`` ones, so both
answer with the same Content-Disposition rules ("Serving inline content"), the recommended
Content-Security-Policy and Cross-Origin-Resource-Policy, and HTTP ranges.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import orjson
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from myelin.api.http.request import MatrixRequest
from myelin.errors import invalid_param, missing_param, too_large
from myelin.services.media.blobs import BlobStore
from myelin.services.media.repository import Upload
from myelin.services.media.thumbnails import (
    MAX_REQUEST_DIMENSION,
    ServedImage,
    ThumbnailRequest,
    missing_blob,
)
from myelin.storage.stores.media import MediaRecord

log = logging.getLogger("myelin.media")

# Client-server API, "Serving inline content": types a browser will not run as a page.
INLINE_CONTENT_TYPES = frozenset({
    "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave",
    "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
})
CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; object-src 'self';"
)
SAFETY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cross-Origin-Resource-Policy": "cross-origin",
    "X-Content-Type-Options": "nosniff",
}
_THUMBNAIL_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif",
                         "image/webp": "webp", "image/apng": "png"}
_UPLOAD_CHUNK = 256 * 1024
# Characters that may stand in a quoted filename as they are (RFC 6266): printable ASCII
# without the quote and backslash that would end or escape the quoted string.
_PLAIN_FILENAME = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


def content_disposition(kind: str, filename: str | None) -> str:
    """``inline``/``attachment`` plus the file name, as RFC 6266 wants it: a quoted string when
    it is plain ASCII, else RFC 8187's ``filename*=utf-8''...`` so any name survives intact."""
    if not filename:
        return kind
    if all(c in _PLAIN_FILENAME for c in filename):
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename*=utf-8''{quote(filename, safe='')}"


def disposition_kind(content_type: str) -> str:
    base = content_type.split(";", 1)[0].strip().lower()
    return "inline" if base in INLINE_CONTENT_TYPES else "attachment"


def upload_from(request: MatrixRequest) -> Upload:
    """The request body as a stream, with the headers that describe it."""
    return Upload(
        chunks=_body_chunks(request),
        content_type=request.http.headers.get("Content-Type"),
        filename=request.query("filename"),
        declared_length=request.http.content_length,
    )


async def _body_chunks(request: MatrixRequest) -> AsyncIterator[bytes]:
    async for chunk in request.http.content.iter_chunked(_UPLOAD_CHUNK):
        yield chunk


async def accept_body(request: MatrixRequest, max_bytes: int) -> None:
    """Answer ``Expect: 100-continue`` (curl sends it for bigger files), unless the declared
    size is already too large - then the client learns it before sending a byte."""
    declared = request.http.content_length
    if declared is not None and declared > max_bytes:
        raise too_large("File is larger than this server accepts")
    if request.http.headers.get("Expect", "").lower() == "100-continue":
        await request.http.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


def file_response(request: MatrixRequest, record: MediaRecord,
                  filename_override: str | None) -> web.StreamResponse:
    assert record.sha256 is not None
    content_type = record.content_type or "application/octet-stream"
    filename = filename_override if filename_override else record.upload_name
    headers = {
        **SAFETY_HEADERS,
        "Content-Type": content_type,
        "Content-Disposition": content_disposition(disposition_kind(content_type), filename),
    }
    return _blob_response(request, record.sha256, headers)


def image_response(request: MatrixRequest, image: ServedImage) -> web.StreamResponse:
    extension = _THUMBNAIL_EXTENSIONS.get(image.content_type, "png")
    headers = {
        **SAFETY_HEADERS,
        "Content-Type": image.content_type,
        "Content-Disposition": content_disposition("inline", f"thumbnail.{extension}"),
    }
    if image.data is not None:
        return web.Response(body=image.data, headers=headers)
    assert image.sha256 is not None
    return _blob_response(request, image.sha256, headers)


def _blob_response(request: MatrixRequest, sha256: str,
                   headers: dict[str, str]) -> web.StreamResponse:
    blobs = request.services.media.blobs
    path = blobs.local_path(sha256)
    if path is None:
        return _MaterializedFileResponse(blobs, sha256, headers)
    # FileResponse would answer a missing file with a bare text/plain 404; clients expect a
    # Matrix error. A row naming a vanished blob means the store was damaged: say so in the log.
    if not path.is_file():
        log.warning("media blob %s is missing from %s", sha256, path.parent)
        raise missing_blob()
    # aiohttp's FileResponse: sendfile, Range/If-Range, ETag and conditional requests.
    return web.FileResponse(path, headers=headers)


class _MaterializedFileResponse(web.FileResponse):
    """A blob that is not on local disk (an object-store backend): fetched into a local file
    only while the answer is being sent, so ranges and conditional requests work as for local
    blobs. ``FileResponse.prepare`` opens the file and sends it all before returning."""

    def __init__(self, blobs: BlobStore, sha256: str, headers: dict[str, str]) -> None:
        super().__init__("", headers=headers)
        self._blobs = blobs
        self._sha256 = sha256

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        try:
            async with self._blobs.materialize(self._sha256) as path:
                self._path = path
                return await super().prepare(request)
        except FileNotFoundError:  # the row outlived its blob: the Matrix 404 of local blobs
            if self.prepared:
                raise
            log.warning("media blob %s is missing from the store", self._sha256)
            error = missing_blob()
            self.set_status(error.status)
            self.headers.pop("Content-Disposition", None)
            self.content_type = "application/json"
            writer = await web.StreamResponse.prepare(self, request)
            await self.write(orjson.dumps(error.to_json()))
            await self.write_eof()
            return writer


def allow_remote(request: MatrixRequest) -> bool:
    """The deprecated endpoints' ``allow_remote`` (default true); only ``true``/``false``."""
    raw = request.query("allow_remote", "true")
    if raw not in ("true", "false"):
        raise invalid_param("allow_remote must be true or false")
    return raw == "true"


def thumbnail_request(request: MatrixRequest) -> ThumbnailRequest:
    width = _dimension(request, "width")
    height = _dimension(request, "height")
    method = request.query("method", "scale")
    if method not in ("crop", "scale"):
        raise invalid_param("method must be 'crop' or 'scale'")
    animated = request.query("animated", "false")
    if animated not in ("true", "false"):
        raise invalid_param("animated must be true or false")
    return ThumbnailRequest(width, height, method, animated == "true")


def _dimension(request: MatrixRequest, name: str) -> int:
    raw = request.query(name)
    if raw is None:
        raise missing_param(f"Missing query parameter {name!r}")
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"{name} must be an integer") from None
    if not 0 < value <= MAX_REQUEST_DIMENSION:
        raise invalid_param(f"{name} must be between 1 and {MAX_REQUEST_DIMENSION}")
    return value
