"""Synapse's shared-secret registration (``/_synapse/admin/v1/register``), which admin tools
and bots (e.g. Synapse's register_new_matrix_user) use to create accounts."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


class SharedSecretBody(msgspec.Struct):
    nonce: str
    username: str
    password: str
    mac: str
    admin: bool = False
    displayname: str | None = None
    user_type: str | None = None


@routes.route("GET", "/_synapse/admin/v1/register", auth=Auth.NONE)
async def nonce(request: MatrixRequest) -> dict[str, Any]:
    return {"nonce": request.services.registration.new_nonce()}


@routes.route("POST", "/_synapse/admin/v1/register", auth=Auth.NONE,
              rate_limit="registration", body=SharedSecretBody)
async def register(request: MatrixRequest) -> dict[str, Any]:
    body: SharedSecretBody = request.body
    session = await request.services.registration.register_with_shared_secret(
        nonce=body.nonce, username=body.username, password=body.password, admin=body.admin,
        mac=body.mac, user_type=body.user_type,
    )
    return {"user_id": session.user_id, "access_token": session.access_token,
            "device_id": session.device_id, "home_server": request.services.config.server_name}
