"""Client-server API, "Server-side key backups": /room_keys/version and /room_keys/keys."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()

_VERSION = "/room_keys/version/{version}"
_ROOM = "/room_keys/keys/{roomId}"
_SESSION = "/room_keys/keys/{roomId}/{sessionId}"


@routes.client("POST", "/room_keys/version", body=dict)
async def create_version(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.key_backup.create_version(request.user.user_id, request.body)


@routes.client("GET", "/room_keys/version")
async def get_current_version(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.key_backup.get_version(request.user.user_id, None)


@routes.client("GET", _VERSION)
async def get_version(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.key_backup.get_version(request.user.user_id,
                                                          request.params["version"])


@routes.client("PUT", _VERSION, body=dict)
async def update_version(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.key_backup.update_version(
        request.user.user_id, request.params["version"], request.body)


@routes.client("DELETE", _VERSION)
async def delete_version(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.key_backup.delete_version(request.user.user_id,
                                                             request.params["version"])


def _where(request: MatrixRequest) -> tuple[str | None, str | None]:
    return request.params.get("roomId"), request.params.get("sessionId")


async def _put_keys(request: MatrixRequest) -> dict[str, Any]:
    room_id, session_id = _where(request)
    return await request.services.key_backup.upload(
        request.user.user_id, request.query("version"), request.body, room_id, session_id)


async def _get_keys(request: MatrixRequest) -> dict[str, Any]:
    room_id, session_id = _where(request)
    return await request.services.key_backup.get_keys(
        request.user.user_id, request.query("version"), room_id, session_id)


async def _delete_keys(request: MatrixRequest) -> dict[str, Any]:
    room_id, session_id = _where(request)
    return await request.services.key_backup.delete_keys(
        request.user.user_id, request.query("version"), room_id, session_id)


for _path in ("/room_keys/keys", _ROOM, _SESSION):
    routes.client("PUT", _path, body=dict)(_put_keys)
    routes.client("GET", _path)(_get_keys)
    routes.client("DELETE", _path)(_delete_keys)
