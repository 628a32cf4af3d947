"""Client-server API, "Filtering": upload and download filters."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


@routes.client("POST", "/user/{userId}/filter", body=dict)
async def upload_filter(request: MatrixRequest) -> dict[str, Any]:
    raw = msgspec.json.encode(request.body)
    filter_id = await request.services.filters.upload(request.user.user_id,
                                                      request.params["userId"], raw)
    return {"filter_id": filter_id}


@routes.client("GET", "/user/{userId}/filter/{filterId}")
async def get_filter(request: MatrixRequest) -> dict[str, Any]:
    f = await request.services.filters.get(request.user.user_id, request.params["userId"],
                                           request.params["filterId"])
    result: dict[str, Any] = msgspec.to_builtins(f)
    return result
