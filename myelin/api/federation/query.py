"""Server-server API, "Querying for information" (profiles, room aliases) and
``GET /_matrix/federation/v1/version``."""

from __future__ import annotations

from typing import Any

from myelin import __version__
from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import invalid_param

routes = Routes()

FEDERATION_V1 = "/_matrix/federation/v1"


@routes.route("GET", f"{FEDERATION_V1}/version", auth=Auth.NONE)
async def version(request: MatrixRequest) -> dict[str, Any]:
    return {"server": {"name": "Myelin", "version": __version__}}


@routes.route("GET", f"{FEDERATION_V1}/query/profile", auth=Auth.FEDERATION)
async def query_profile(request: MatrixRequest) -> dict[str, Any]:
    user_id = request.require_query("user_id")
    field = request.query("field")
    profiles = request.services.profiles
    if field is None:
        return await profiles.get_profile(user_id)
    if field not in ("displayname", "avatar_url"):
        raise invalid_param("field must be displayname or avatar_url")
    return await profiles.get_field(user_id, field)


@routes.route("GET", f"{FEDERATION_V1}/query/directory", auth=Auth.FEDERATION)
async def query_directory(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.directory.resolve_alias(request.require_query("room_alias"))
