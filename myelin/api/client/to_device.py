"""Client-server API, "Send-to-Device messaging": PUT /sendToDevice/{eventType}/{txnId}."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import missing_param

routes = Routes()


@routes.client("PUT", "/sendToDevice/{eventType}/{txnId}", body=dict)
async def send_to_device(request: MatrixRequest) -> Any:
    if "messages" not in request.body:
        raise missing_param("Missing 'messages'")
    user = request.user
    body = await request.services.to_device.send(
        user.user_id, user.device_id, request.params["eventType"], request.params["txnId"],
        request.body["messages"])
    return web.Response(body=body, content_type="application/json")
