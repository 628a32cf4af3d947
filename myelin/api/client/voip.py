"""Client-server API, "Voice over IP" (voip.yaml): GET /voip/turnServer."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


@routes.client("GET", "/voip/turnServer")
async def turn_server(request: MatrixRequest) -> dict[str, Any]:
    return request.services.voip.turn_server(request.user)
