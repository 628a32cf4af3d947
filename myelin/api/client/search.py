"""Client-server API, "Server Side Search": POST /search (search.yaml).

The body's shape is checked by the dispatcher against :class:`SearchRequest` (M_BAD_JSON when
a required key such as ``search_term`` is missing or a value has the wrong type or is not one
the spec allows); everything else is in ``myelin.services.search``.
"""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.services.search import SearchRequest

routes = Routes()


@routes.client("POST", "/search", body=SearchRequest)
async def search(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.search.search(
        request.user.user_id, request.user.device_id, request.body,
        next_batch=request.query("next_batch"))
