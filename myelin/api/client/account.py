"""Client-server API, "Account management": who am I, password change, deactivation."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


@routes.client("GET", "/account/whoami")
async def whoami(request: MatrixRequest) -> dict[str, Any]:
    user = request.user
    return {"user_id": user.user_id, "device_id": user.device_id, "is_guest": user.is_guest}


class PasswordBody(msgspec.Struct):
    new_password: str
    logout_devices: bool = True
    auth: dict[str, Any] | None = None


class DeactivateBody(msgspec.Struct):
    auth: dict[str, Any] | None = None
    erase: bool = False
    id_server: str | None = None


@routes.client("POST", "/account/password", body=PasswordBody)
async def change_password(request: MatrixRequest) -> dict[str, Any]:
    body: PasswordBody = request.body
    await request.services.accounts.change_password(
        request.user, body.auth, body.new_password, logout_devices=body.logout_devices)
    return {}


@routes.client("POST", "/account/deactivate", body=DeactivateBody, body_optional=True)
async def deactivate(request: MatrixRequest) -> dict[str, Any]:
    body: DeactivateBody = request.body
    await request.services.accounts.deactivate(request.user, body.auth)
    # No identity server is ever bound by this server, so nothing was unbound there.
    return {"id_server_unbind_result": "no-support"}
