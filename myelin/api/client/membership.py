"""Client-server API, "Room membership": join, knock, invite, leave, kick, ban, unban."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


class ReasonBody(msgspec.Struct):
    reason: str | None = None


class TargetBody(msgspec.Struct):
    user_id: str
    reason: str | None = None


@routes.client("POST", "/join/{roomIdOrAlias}", body=ReasonBody, body_optional=True,
               rate_limit="join")
async def join_by_id_or_alias(request: MatrixRequest) -> dict[str, Any]:
    # "via" (and the older "server_name"): servers to try when the room is elsewhere.
    via = request.http.query.getall("via", []) + request.http.query.getall("server_name", [])
    room_id = await request.services.membership.join(
        request.user.user_id, request.params["roomIdOrAlias"], request.body.reason, via=via)
    return {"room_id": room_id}


@routes.client("POST", "/rooms/{roomId}/join", body=ReasonBody, body_optional=True,
               rate_limit="join")
async def join_room(request: MatrixRequest) -> dict[str, Any]:
    room_id = await request.services.membership.join(
        request.user.user_id, request.params["roomId"], request.body.reason)
    return {"room_id": room_id}


@routes.client("POST", "/knock/{roomIdOrAlias}", body=ReasonBody, body_optional=True,
               rate_limit="join")
async def knock(request: MatrixRequest) -> dict[str, Any]:
    via = request.http.query.getall("via", []) + request.http.query.getall("server_name", [])
    room_id = await request.services.membership.knock(
        request.user.user_id, request.params["roomIdOrAlias"], request.body.reason, via=via)
    return {"room_id": room_id}


@routes.client("POST", "/rooms/{roomId}/leave", body=ReasonBody, body_optional=True)
async def leave(request: MatrixRequest) -> dict[str, Any]:
    await request.services.membership.leave(request.user.user_id, request.params["roomId"],
                                            request.body.reason)
    return {}


@routes.client("POST", "/rooms/{roomId}/invite", body=TargetBody, rate_limit="invite")
async def invite(request: MatrixRequest) -> dict[str, Any]:
    body: TargetBody = request.body
    await request.services.membership.invite(request.user.user_id, request.params["roomId"],
                                             body.user_id, body.reason)
    return {}


@routes.client("POST", "/rooms/{roomId}/kick", body=TargetBody)
async def kick(request: MatrixRequest) -> dict[str, Any]:
    body: TargetBody = request.body
    await request.services.membership.kick(request.user.user_id, request.params["roomId"],
                                           body.user_id, body.reason)
    return {}


@routes.client("POST", "/rooms/{roomId}/ban", body=TargetBody)
async def ban(request: MatrixRequest) -> dict[str, Any]:
    body: TargetBody = request.body
    await request.services.membership.ban(request.user.user_id, request.params["roomId"],
                                          body.user_id, body.reason)
    return {}


@routes.client("POST", "/rooms/{roomId}/unban", body=TargetBody)
async def unban(request: MatrixRequest) -> dict[str, Any]:
    body: TargetBody = request.body
    await request.services.membership.unban(request.user.user_id, request.params["roomId"],
                                            body.user_id, body.reason)
    return {}


@routes.client("POST", "/rooms/{roomId}/forget", body=dict, body_optional=True)
async def forget(request: MatrixRequest) -> dict[str, Any]:
    await request.services.membership.forget(request.user.user_id, request.params["roomId"])
    return {}
