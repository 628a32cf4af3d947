"""Client-server API, "Account management": who am I."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


@routes.client("GET", "/account/whoami")
async def whoami(request: MatrixRequest) -> dict[str, Any]:
    user = request.user
    return {"user_id": user.user_id, "device_id": user.device_id, "is_guest": user.is_guest}
