"""Server-server API, "Joining Rooms": make_join and send_join (v1 and v2) on the resident
server."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


@routes.route("GET", f"{V1}/make_join/{{roomId}}/{{userId}}", auth=Auth.FEDERATION)
async def make_join(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.joins.make_membership(
        "join", request.origin_server, request.params["roomId"], request.params["userId"],
        request.http.query.getall("ver", []))


@routes.route("GET", f"{V1}/make_leave/{{roomId}}/{{userId}}", auth=Auth.FEDERATION)
async def make_leave(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.joins.make_membership(
        "leave", request.origin_server, request.params["roomId"], request.params["userId"],
        None)


@routes.route("GET", f"{V1}/make_knock/{{roomId}}/{{userId}}", auth=Auth.FEDERATION)
async def make_knock(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.joins.make_membership(
        "knock", request.origin_server, request.params["roomId"], request.params["userId"],
        request.http.query.getall("ver", []))


@routes.route("PUT", f"{V2}/send_leave/{{roomId}}/{{eventId}}", auth=Auth.FEDERATION,
              body=dict)
async def send_leave(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    await request.services.joins.send_membership(
        "leave", request.origin_server, request.params["roomId"], request.params["eventId"],
        request.body)
    return {}


@routes.route("PUT", f"{V1}/send_leave/{{roomId}}/{{eventId}}", auth=Auth.FEDERATION,
              body=dict)
async def send_leave_v1(request: MatrixRequest) -> list[Any]:
    return [200, await send_leave(request)]


@routes.route("PUT", f"{V1}/send_knock/{{roomId}}/{{eventId}}", auth=Auth.FEDERATION,
              body=dict)
async def send_knock(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.joins.send_knock(
        request.origin_server, request.params["roomId"], request.params["eventId"],
        request.body)


@routes.route("PUT", f"{V2}/send_join/{{roomId}}/{{eventId}}", auth=Auth.FEDERATION,
              body=dict)
async def send_join(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.joins.send_join(
        request.origin_server, request.params["roomId"], request.params["eventId"],
        request.body)


@routes.route("PUT", f"{V1}/send_join/{{roomId}}/{{eventId}}", auth=Auth.FEDERATION,
              body=dict)
async def send_join_v1(request: MatrixRequest) -> list[Any]:
    # v1 wraps the same answer as [200, response] (deprecated, still used by old servers).
    return [200, await send_join(request)]


@routes.route("PUT", f"{V2}/invite/{{roomId}}/{{eventId}}", auth=Auth.FEDERATION, body=dict)
async def invite(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.invites.on_invite(
        request.origin_server, request.params["roomId"], request.params["eventId"],
        request.body)
