"""Client-server API, "GET /sync"."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import invalid_param
from myelin.services.sync import SyncRequest, parse_sync_position

routes = Routes()


@routes.client("GET", "/sync")
async def sync(request: MatrixRequest) -> Any:
    since = request.query("since")
    full_state = request.query("full_state", "false")
    if full_state not in ("true", "false"):
        raise invalid_param("full_state must be true or false")
    set_presence = request.query("set_presence", "online") or "online"
    if set_presence not in ("online", "offline", "unavailable"):
        raise invalid_param("set_presence must be online, offline or unavailable")
    user = request.user
    response = await request.services.sync.sync(SyncRequest(
        user_id=user.user_id,
        device_id=user.device_id,
        since=parse_sync_position(since)[0] if since else None,
        since_ephemeral=parse_sync_position(since)[1] if since else None,
        timeout_ms=request.query_int("timeout", 0),
        full_state=full_state == "true",
        filter=await request.services.filters.resolve(user.user_id, request.query("filter")),
        set_presence=set_presence,
    ))
    return web.Response(body=orjson.dumps(response), content_type="application/json")
