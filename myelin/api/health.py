"""A liveness probe for load balancers and orchestrators (not part of the Matrix spec)."""

from __future__ import annotations

from aiohttp import web

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


@routes.route("GET", "/health", auth=Auth.NONE)
async def health(request: MatrixRequest) -> web.Response:
    return web.Response(text="OK", content_type="text/plain")
