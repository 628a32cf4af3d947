"""Client-server API, "GET /rooms/{roomId}/messages" and "GET /rooms/{roomId}/context"."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.services.filtering import parse_room_event_filter

routes = Routes()


@routes.client("GET", "/rooms/{roomId}/messages")
async def messages(request: MatrixRequest) -> dict[str, Any]:
    page = await request.services.history.messages(
        request.user.user_id, request.user.device_id, request.params["roomId"],
        from_token=request.query("from"), to_token=request.query("to"),
        direction=request.query("dir", "b") or "b", limit=request.query_int("limit", 10),
        room_filter=parse_room_event_filter(request.query("filter")),
    )
    out: dict[str, Any] = {"chunk": page.chunk, "start": page.start}
    if page.end is not None:
        out["end"] = page.end
    if page.state:
        out["state"] = page.state
    return out


@routes.client("GET", "/rooms/{roomId}/context/{eventId}")
async def context(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.history.context(
        request.user.user_id, request.user.device_id, request.params["roomId"],
        request.params["eventId"],
        limit=request.query_int("limit", 10),
        room_filter=parse_room_event_filter(request.query("filter")),
    )


@routes.client("GET", "/rooms/{roomId}/timestamp_to_event", versions=("v1",))
async def timestamp_to_event(request: MatrixRequest) -> dict[str, Any]:
    request.require_query("ts")
    stored = await request.services.history.event_near(
        request.user.user_id, request.params["roomId"], request.query_int("ts", 0),
        request.require_query("dir"))
    return {"event_id": stored.pdu.event_id, "origin_server_ts": stored.pdu.origin_server_ts}
