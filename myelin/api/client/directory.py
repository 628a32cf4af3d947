"""Client-server API, "Room aliases" (directory.yaml) and "Published room directory"
(list_public_rooms.yaml). Auth follows each endpoint's OpenAPI ``security``: resolving an alias,
reading a room's directory visibility and ``GET /publicRooms`` need no access token."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.services.directory import PublicRoomsQuery

routes = Routes()


class AliasBody(msgspec.Struct):
    room_id: str


class VisibilityBody(msgspec.Struct):
    visibility: str = "public"


class PublicRoomsFilter(msgspec.Struct):
    generic_search_term: str | None = None
    room_types: list[str | None] | None = None


class PublicRoomsBody(msgspec.Struct):
    limit: int | None = None
    since: str | None = None
    filter: PublicRoomsFilter | None = None
    include_all_networks: bool = False
    third_party_instance_id: str | None = None


@routes.client("PUT", "/directory/room/{roomAlias}", body=AliasBody)
async def set_alias(request: MatrixRequest) -> dict[str, Any]:
    await request.services.directory.create_alias(request.user, request.params["roomAlias"],
                                                  request.body.room_id)
    return {}


@routes.client("GET", "/directory/room/{roomAlias}", auth=Auth.NONE)
async def get_alias(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.directory.resolve_alias(request.params["roomAlias"])


@routes.client("DELETE", "/directory/room/{roomAlias}")
async def delete_alias(request: MatrixRequest) -> dict[str, Any]:
    await request.services.directory.delete_alias(request.user, request.params["roomAlias"])
    return {}


@routes.client("GET", "/rooms/{roomId}/aliases")
async def local_aliases(request: MatrixRequest) -> dict[str, Any]:
    aliases = await request.services.directory.local_aliases(request.user,
                                                             request.params["roomId"])
    return {"aliases": aliases}


@routes.client("GET", "/directory/list/room/{roomId}", auth=Auth.NONE)
async def get_visibility(request: MatrixRequest) -> dict[str, Any]:
    visibility = await request.services.directory.get_visibility(request.params["roomId"])
    return {"visibility": visibility}


@routes.client("PUT", "/directory/list/room/{roomId}", body=VisibilityBody, body_optional=True)
async def set_visibility(request: MatrixRequest) -> dict[str, Any]:
    await request.services.directory.set_visibility(request.user, request.params["roomId"],
                                                    request.body.visibility)
    return {}


@routes.client("GET", "/publicRooms", auth=Auth.NONE)
async def public_rooms(request: MatrixRequest) -> dict[str, Any]:
    raw_limit = request.query("limit")
    limit = None if raw_limit is None else request.query_int("limit", 0)
    return await request.services.directory.public_rooms(PublicRoomsQuery(
        limit=limit, since=request.query("since") or None, server=request.query("server")))


@routes.client("POST", "/publicRooms", body=PublicRoomsBody, body_optional=True)
async def query_public_rooms(request: MatrixRequest) -> dict[str, Any]:
    body: PublicRoomsBody = request.body
    search = body.filter or PublicRoomsFilter()
    return await request.services.directory.public_rooms(PublicRoomsQuery(
        limit=body.limit, since=body.since or None, search_term=search.generic_search_term,
        room_types=search.room_types, server=request.query("server"),
        include_all_networks=body.include_all_networks,
        third_party_instance_id=body.third_party_instance_id,
    ))
