"""Client-server API, module "Presence": GET/PUT /presence/{userId}/status."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


class PresenceBody(msgspec.Struct):
    presence: str
    status_msg: str | None = None


@routes.client("PUT", "/presence/{userId}/status", body=PresenceBody)
async def set_status(request: MatrixRequest) -> dict[str, Any]:
    body: PresenceBody = request.body
    await request.services.presence.set_status(request.user.user_id, request.params["userId"],
                                               body.presence, body.status_msg)
    return {}


@routes.client("GET", "/presence/{userId}/status")
async def get_status(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.presence.get_status(request.user.user_id,
                                                      request.params["userId"])
