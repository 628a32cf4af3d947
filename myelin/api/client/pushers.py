"""Client-server API, "Push Notifications: Client behaviour": list and set pushers."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


@routes.client("GET", "/pushers")
async def get_pushers(request: MatrixRequest) -> dict[str, Any]:
    return {"pushers": await request.services.pushers.list_for_user(request.user.user_id)}


# Fields are checked by the service: a missing one is M_MISSING_PARAM, not M_BAD_JSON.
@routes.client("POST", "/pushers/set", body=dict)
async def set_pusher(request: MatrixRequest) -> dict[str, Any]:
    await request.services.pushers.set_pusher(request.user.user_id, request.user.device_id,
                                              request.body)
    return {}
