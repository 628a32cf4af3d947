"""Server-server API, "Content Repository": our media and thumbnails for other servers, as
multipart/mixed (a JSON metadata part, then the bytes)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from myelin.api.client.media_responses import (
    content_disposition,
    disposition_kind,
    thumbnail_request,
)
from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.services.media.remote import multipart_media
from myelin.services.media.repository import DEFAULT_WAIT_MS
from myelin.services.media.thumbnails import missing_blob

routes = Routes()

V1 = "/_matrix/federation/v1"


async def _blob(request: MatrixRequest, sha256: str) -> bytes:
    try:
        async with request.services.media.blobs.materialize(sha256) as path:
            return await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:  # a damaged store: a Matrix 404, not a 500
        raise missing_blob() from None


@routes.route("GET", f"{V1}/media/download/{{mediaId}}", auth=Auth.FEDERATION)
async def download(request: MatrixRequest) -> web.StreamResponse:
    services = request.services
    record = await services.media.find(services.config.server_name, request.params["mediaId"],
                                       timeout_ms=request.query_int("timeout_ms",
                                                                    DEFAULT_WAIT_MS))
    assert record.sha256 is not None
    content_type = record.content_type or "application/octet-stream"
    return await multipart_media(
        await _blob(request, record.sha256), content_type,
        content_disposition(disposition_kind(content_type), record.upload_name))


@routes.route("GET", f"{V1}/media/thumbnail/{{mediaId}}", auth=Auth.FEDERATION)
async def thumbnail(request: MatrixRequest) -> web.StreamResponse:
    services = request.services
    wanted = thumbnail_request(request)
    record = await services.media.find(services.config.server_name, request.params["mediaId"],
                                       timeout_ms=request.query_int("timeout_ms",
                                                                    DEFAULT_WAIT_MS))
    image = await services.thumbnails.thumbnail(record, wanted)
    data = image.data if image.data is not None else await _blob(request, image.sha256 or "")
    return await multipart_media(data, image.content_type,
                                 content_disposition("inline", "thumbnail"))
