"""The deprecated ``/_matrix/media/{v3,r0,v1}`` download, thumbnail, preview and config
endpoints (client-server API, "Content repository", deprecated since Matrix 1.11).

Downloads and thumbnails here need no access token, so they are frozen as the spec asks: they
see only media stored while ``media.freeze_unauthenticated`` was off, and the whole set can be
switched off with ``media.legacy_endpoints``. They also take ``allow_remote``, which the
authenticated endpoints no longer define: ``false`` serves remote media only from the cache.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from myelin.api.client.media_responses import (
    allow_remote,
    file_response,
    image_response,
    thumbnail_request,
)
from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import unrecognized
from myelin.services.media.repository import DEFAULT_WAIT_MS

routes = Routes()

VERSIONS = ("v3", "r0", "v1")


def _paths(suffix: str) -> tuple[str, ...]:
    return tuple(f"/_matrix/media/{version}{suffix}" for version in VERSIONS)


def _require_enabled(request: MatrixRequest) -> None:
    if not request.services.config.media.legacy_endpoints:
        raise unrecognized("The unauthenticated media endpoints are disabled on this server; "
                           "use /_matrix/client/v1/media")


@routes.route("GET", *_paths("/download/{serverName}/{mediaId}"),
              *_paths("/download/{serverName}/{mediaId}/{fileName}"), auth=Auth.NONE)
async def download(request: MatrixRequest) -> web.StreamResponse:
    _require_enabled(request)
    record = await request.services.media.find(
        request.params["serverName"], request.params["mediaId"],
        timeout_ms=request.query_int("timeout_ms", DEFAULT_WAIT_MS), unauthenticated=True,
        allow_remote=allow_remote(request))
    return file_response(request, record, request.params.get("fileName"))


@routes.route("GET", *_paths("/thumbnail/{serverName}/{mediaId}"), auth=Auth.NONE)
async def thumbnail(request: MatrixRequest) -> web.StreamResponse:
    _require_enabled(request)
    wanted = thumbnail_request(request)
    media = request.services.media
    record = await media.find(
        request.params["serverName"], request.params["mediaId"],
        timeout_ms=request.query_int("timeout_ms", DEFAULT_WAIT_MS), unauthenticated=True,
        allow_remote=allow_remote(request))
    # Made from the original, never from a thumbnail another server sent: those are cached
    # without the freeze's stored-when mark, so this endpoint could not tell whether to serve
    # them.
    image = await request.services.thumbnails.thumbnail(
        record, wanted, remote=record.origin != media.server_name)
    return image_response(request, image)


@routes.route("GET", *_paths("/config"))
async def config(request: MatrixRequest) -> dict[str, Any]:
    _require_enabled(request)
    return request.services.media.public_config()


@routes.route("GET", *_paths("/preview_url"), rate_limit="url_preview")
async def preview_url(request: MatrixRequest) -> dict[str, Any]:
    _require_enabled(request)
    return await request.services.url_previews.preview(request.require_query("url"))
