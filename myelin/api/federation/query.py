"""Server-server API, "Querying for information" (profiles, room aliases) and
``GET /_matrix/federation/v1/version``."""

from __future__ import annotations

from typing import Any

from myelin import __version__
from myelin.api.client.directory import PublicRoomsBody, PublicRoomsFilter
from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import MatrixError, invalid_param, not_found
from myelin.ids import UserID
from myelin.services.directory import PublicRoomsQuery

routes = Routes()

FEDERATION_V1 = "/_matrix/federation/v1"


@routes.route("GET", f"{FEDERATION_V1}/version", auth=Auth.NONE)
async def version(request: MatrixRequest) -> dict[str, Any]:
    return {"server": {"name": "Myelin", "version": __version__}}


@routes.route("GET", f"{FEDERATION_V1}/query/profile", auth=Auth.FEDERATION)
async def query_profile(request: MatrixRequest) -> dict[str, Any]:
    user_id = request.require_query("user_id")
    if UserID.parse(user_id).domain != request.services.config.server_name:
        # Answered for our own users only: relaying would let any server make us query
        # a third one on its behalf.
        raise not_found("The user is not hosted on this server")
    field = request.query("field")
    profiles = request.services.profiles
    if field is None:
        return await profiles.get_profile(user_id)
    if field not in ("displayname", "avatar_url"):
        raise invalid_param("field must be displayname or avatar_url")
    return await profiles.get_field(user_id, field)


@routes.route("GET", f"{FEDERATION_V1}/query/directory", auth=Auth.FEDERATION)
async def query_directory(request: MatrixRequest) -> dict[str, Any]:
    alias = request.require_query("room_alias")
    if not alias.startswith("#") or ":" not in alias:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid room alias: {alias!r}")
    if alias.split(":", 1)[1] != request.services.config.server_name:
        raise not_found("The room alias is not hosted on this server")  # never relayed
    return await request.services.directory.resolve_alias(alias)


@routes.route("GET", f"{FEDERATION_V1}/publicRooms", auth=Auth.FEDERATION)
async def public_rooms(request: MatrixRequest) -> dict[str, Any]:
    raw_limit = request.query("limit")
    return await request.services.directory.public_rooms(PublicRoomsQuery(
        limit=None if raw_limit is None else request.query_int("limit", 0),
        since=request.query("since") or None,
        include_all_networks=request.query("include_all_networks") == "true",
        third_party_instance_id=request.query("third_party_instance_id")))


@routes.route("POST", f"{FEDERATION_V1}/publicRooms", auth=Auth.FEDERATION,
              body=PublicRoomsBody, body_optional=True)
async def query_public_rooms(request: MatrixRequest) -> dict[str, Any]:
    body: PublicRoomsBody = request.body
    search = body.filter or PublicRoomsFilter()
    return await request.services.directory.public_rooms(PublicRoomsQuery(
        limit=body.limit, since=body.since or None, search_term=search.generic_search_term,
        room_types=search.room_types, include_all_networks=body.include_all_networks,
        third_party_instance_id=body.third_party_instance_id))


@routes.route("GET", f"{FEDERATION_V1}/hierarchy/{{roomId}}", auth=Auth.FEDERATION)
async def hierarchy(request: MatrixRequest) -> dict[str, Any]:
    await request.services.room_acls.check(request.params["roomId"], request.origin_server)
    return await request.services.spaces.federation_hierarchy(
        request.origin_server, request.params["roomId"],
        request.query("suggested_only") == "true")
