"""Client-server API, "User Directory" (users.yaml): POST /user_directory/search."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


class SearchBody(msgspec.Struct):
    search_term: str
    limit: int = 10


@routes.client("POST", "/user_directory/search", body=SearchBody)
async def search(request: MatrixRequest) -> dict[str, Any]:
    body: SearchBody = request.body
    return await request.services.user_directory.search(request.user, body.search_term,
                                                        body.limit)
