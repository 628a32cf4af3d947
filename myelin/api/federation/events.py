"""Server-server API: transactions (``PUT /send/{txnId}``) and reading a room's events
(``/event``, ``/state``, ``/state_ids``, ``/event_auth``, ``/get_missing_events``,
``/backfill``)."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import missing_param

routes = Routes()

V1 = "/_matrix/federation/v1"


@routes.route("PUT", f"{V1}/send/{{txnId}}", auth=Auth.FEDERATION, body=dict)
async def send_transaction(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.federation_receiver.on_transaction(
        request.origin_server, request.params["txnId"], request.body)


@routes.route("GET", f"{V1}/event/{{eventId}}", auth=Auth.FEDERATION)
async def get_event(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.room_data.event(request.origin_server,
                                                  request.params["eventId"])


@routes.route("GET", f"{V1}/state_ids/{{roomId}}", auth=Auth.FEDERATION)
async def state_ids(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.room_data.state_ids(
        request.origin_server, request.params["roomId"], request.require_query("event_id"))


@routes.route("GET", f"{V1}/state/{{roomId}}", auth=Auth.FEDERATION)
async def state(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.room_data.state(
        request.origin_server, request.params["roomId"], request.require_query("event_id"))


@routes.route("GET", f"{V1}/event_auth/{{roomId}}/{{eventId}}", auth=Auth.FEDERATION)
async def event_auth(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.room_data.event_auth(
        request.origin_server, request.params["roomId"], request.params["eventId"])


@routes.route("POST", f"{V1}/get_missing_events/{{roomId}}", auth=Auth.FEDERATION, body=dict)
async def get_missing_events(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.room_data.missing_events(
        request.origin_server, request.params["roomId"], request.body)


@routes.route("GET", f"{V1}/backfill/{{roomId}}", auth=Auth.FEDERATION)
async def backfill(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    start = request.http.query.getall("v", [])
    if not start:
        raise missing_param("Missing query parameter 'v'")
    return await request.services.room_data.backfill(
        request.origin_server, request.params["roomId"], start,
        request.query_int("limit", 10))
