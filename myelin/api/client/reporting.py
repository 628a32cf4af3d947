"""Client-server API, "Reporting content" (report_content.yaml): events, rooms and users.

Which unknown targets get 404 and which get 200 anyway is decided in
``myelin.services.reports``. Room and user reports exist since v1.13/v1.14, so only under v3.
"""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


class ReasonBody(msgspec.Struct):
    reason: str


@routes.client("POST", "/rooms/{roomId}/report/{eventId}", body=dict, rate_limit="reports")
async def report_event(request: MatrixRequest) -> dict[str, Any]:
    await request.services.reports.report_event(request.user.user_id, request.params["roomId"],
                                                request.params["eventId"], request.body)
    return {}


@routes.client("POST", "/rooms/{roomId}/report", versions=("v3",), body=ReasonBody,
               rate_limit="reports")
async def report_room(request: MatrixRequest) -> dict[str, Any]:
    await request.services.reports.report_room(request.user.user_id, request.params["roomId"],
                                               request.body.reason)
    return {}


@routes.client("POST", "/users/{userId}/report", versions=("v3",), body=ReasonBody,
               rate_limit="reports")
async def report_user(request: MatrixRequest) -> dict[str, Any]:
    await request.services.reports.report_user(request.user.user_id, request.params["userId"],
                                               request.body.reason)
    return {}
