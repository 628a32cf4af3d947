"""Client-server API, "Listing Notifications": ``GET /notifications``."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


@routes.client("GET", "/notifications")
async def get_notifications(request: MatrixRequest) -> dict[str, Any]:
    limit = request.query("limit")
    return await request.services.notifications.page(
        request.user.user_id, request.user.device_id, request.query("from"),
        request.query_int("limit", 0) if limit is not None else None, request.query("only"))
