"""Client-server API, "Client Config": global and per-room account data."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import invalid_param

routes = Routes()


@routes.client("PUT", "/user/{userId}/account_data/{type}", body=dict)
async def put_global(request: MatrixRequest) -> dict[str, Any]:
    await request.services.account_data.put(request.user.user_id, request.params["userId"],
                                            None, request.params["type"], request.body)
    return {}


@routes.client("GET", "/user/{userId}/account_data/{type}")
async def get_global(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.account_data.get(request.user.user_id,
                                                   request.params["userId"], None,
                                                   request.params["type"])


@routes.client("PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}", body=dict)
async def put_room(request: MatrixRequest) -> dict[str, Any]:
    await request.services.account_data.put(request.user.user_id, request.params["userId"],
                                            _room_id(request), request.params["type"],
                                            request.body)
    return {}


@routes.client("GET", "/user/{userId}/rooms/{roomId}/account_data/{type}")
async def get_room(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.account_data.get(request.user.user_id,
                                                   request.params["userId"], _room_id(request),
                                                   request.params["type"])


def _room_id(request: MatrixRequest) -> str:
    room_id = request.params["roomId"]
    if not room_id.startswith("!"):
        raise invalid_param("Invalid room ID")
    return room_id
