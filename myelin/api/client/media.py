"""Content repository: uploads (``/_matrix/media``) and the authenticated downloads,
thumbnails, previews and config under ``/_matrix/client/v1/media`` (client-server API,
"Content repository")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from myelin.api.client.media_responses import (
    accept_body,
    file_response,
    image_response,
    thumbnail_request,
    upload_from,
)
from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.services.media.repository import DEFAULT_WAIT_MS

routes = Routes()

MEDIA_V1 = "/_matrix/client/v1/media"


@routes.route("POST", "/_matrix/media/v3/upload", "/_matrix/media/r0/upload")
async def upload(request: MatrixRequest) -> dict[str, Any]:
    await _accept_upload(request)
    uri = await request.services.media.upload(request.user.user_id, upload_from(request))
    return {"content_uri": uri}


@routes.route("POST", "/_matrix/media/v1/create", rate_limit="media_create")
async def create(request: MatrixRequest) -> dict[str, Any]:
    uri, expires = await request.services.media.reserve(request.user.user_id)
    return {"content_uri": uri, "unused_expires_at": expires}


@routes.route("PUT", "/_matrix/media/v3/upload/{serverName}/{mediaId}")
async def upload_to_reserved(request: MatrixRequest) -> dict[str, Any]:
    await _accept_upload(request)
    await request.services.media.upload_reserved(
        request.user.user_id, request.params["serverName"], request.params["mediaId"],
        upload_from(request))
    return {}


async def _accept_upload(request: MatrixRequest) -> None:
    """Size limit and quota first, then ``100 Continue``: a client whose declared size does
    not fit learns it before sending the body."""
    await request.services.media.check_upload_size(request.user.user_id,
                                                   request.http.content_length)
    await accept_body(request, request.services.config.media.max_upload_bytes)


@routes.route("GET", f"{MEDIA_V1}/config")
async def config(request: MatrixRequest) -> dict[str, Any]:
    return request.services.media.public_config()


@routes.route("GET", f"{MEDIA_V1}/download/{{serverName}}/{{mediaId}}",
              f"{MEDIA_V1}/download/{{serverName}}/{{mediaId}}/{{fileName}}")
async def download(request: MatrixRequest) -> web.StreamResponse:
    record = await request.services.media.find(
        request.params["serverName"], request.params["mediaId"],
        timeout_ms=request.query_int("timeout_ms", DEFAULT_WAIT_MS))
    return file_response(request, record, request.params.get("fileName"))


@routes.route("GET", f"{MEDIA_V1}/thumbnail/{{serverName}}/{{mediaId}}")
async def thumbnail(request: MatrixRequest) -> web.StreamResponse:
    wanted = thumbnail_request(request)
    services = request.services
    image = await services.thumbnails.for_media(
        services.media, request.params["serverName"], request.params["mediaId"], wanted,
        timeout_ms=request.query_int("timeout_ms", DEFAULT_WAIT_MS))
    return image_response(request, image)


@routes.route("GET", f"{MEDIA_V1}/preview_url", rate_limit="url_preview")
async def preview_url(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.url_previews.preview(request.require_query("url"))
