"""Client-server API, "Spaces": ``GET /_matrix/client/v1/rooms/{roomId}/hierarchy``
(space_hierarchy.yaml). Guests may call it, as on Synapse."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import invalid_param
from myelin.services.spaces import HierarchyQuery

routes = Routes()


def _optional_int(request: MatrixRequest, name: str) -> int | None:
    return None if request.query(name) is None else request.query_int(name, 0)


@routes.client("GET", "/rooms/{roomId}/hierarchy", versions=("v1",))
async def hierarchy(request: MatrixRequest) -> dict[str, Any]:
    suggested_only = request.query("suggested_only", "false")
    if suggested_only not in ("true", "false"):
        raise invalid_param("suggested_only must be true or false")
    return await request.services.spaces.hierarchy(request.user, HierarchyQuery(
        room_id=request.params["roomId"],
        suggested_only=suggested_only == "true",
        max_depth=_optional_int(request, "max_depth"),
        limit=_optional_int(request, "limit"),
        from_token=request.query("from"),
    ))
