"""Client-server API, "Relationship types" and "Threading": GET /relations and GET /threads."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import invalid_param

routes = Routes()


def _recurse(request: MatrixRequest) -> bool | None:
    value = request.query("recurse")
    if value is None:
        return None
    if value not in ("true", "false"):
        raise invalid_param("recurse must be 'true' or 'false'")
    return value == "true"


async def _relations(request: MatrixRequest) -> dict[str, Any]:
    user = request.user
    return await request.services.relations.relations(
        user.user_id, user.device_id, request.params["roomId"], request.params["eventId"],
        rel_type=request.params.get("relType"), event_type=request.params.get("eventType"),
        from_token=request.query("from"), to_token=request.query("to"),
        direction=request.query("dir", "b") or "b", limit=request.query_int("limit", 0),
        recurse=_recurse(request),
    )


@routes.client("GET", "/rooms/{roomId}/relations/{eventId}", versions=("v1",))
async def relations(request: MatrixRequest) -> dict[str, Any]:
    return await _relations(request)


@routes.client("GET", "/rooms/{roomId}/relations/{eventId}/{relType}", versions=("v1",))
async def relations_by_type(request: MatrixRequest) -> dict[str, Any]:
    return await _relations(request)


@routes.client("GET", "/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}",
               versions=("v1",))
async def relations_by_type_and_event_type(request: MatrixRequest) -> dict[str, Any]:
    return await _relations(request)


@routes.client("GET", "/rooms/{roomId}/threads", versions=("v1",))
async def threads(request: MatrixRequest) -> dict[str, Any]:
    user = request.user
    limit = request.query_int("limit", 0) if request.query("limit") is not None else None
    return await request.services.relations.threads(
        user.user_id, user.device_id, request.params["roomId"],
        include=request.query("include", "all") or "all", from_token=request.query("from"),
        limit=limit,
    )
