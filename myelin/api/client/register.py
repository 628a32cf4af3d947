"""Client-server API, "Account registration": POST /register, availability, token validity."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.client.login import session_json
from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import invalid_param

routes = Routes()


class RegisterBody(msgspec.Struct):
    username: str | None = None
    password: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    inhibit_login: bool = False
    refresh_token: bool = False
    auth: dict[str, Any] | None = None


@routes.client("POST", "/register", auth=Auth.NONE, body=RegisterBody)
async def register(request: MatrixRequest) -> dict[str, Any]:
    body: RegisterBody = request.body
    registration = request.services.registration
    kind = request.query("kind", "user")
    if kind == "guest":
        result = await registration.register_guest(
            device_display_name=body.initial_device_display_name, client_ip=request.client_ip)
    elif kind == "user":
        result = await registration.register_user(
            username=body.username, password=body.password, auth=body.auth,
            device_id=body.device_id, device_display_name=body.initial_device_display_name,
            inhibit_login=body.inhibit_login, refreshable=body.refresh_token,
            client_ip=request.client_ip,
        )
    else:
        raise invalid_param("kind must be 'user' or 'guest'")
    server_name = request.services.config.server_name
    if result.session is None:
        return {"user_id": result.user_id, "home_server": server_name}
    return session_json(result.session, server_name)


@routes.client("GET", "/register/available", auth=Auth.NONE, rate_limit="registration")
async def available(request: MatrixRequest) -> dict[str, Any]:
    await request.services.registration.check_username(request.require_query("username"))
    return {"available": True}


@routes.client("GET", "/register/m.login.registration_token/validity", auth=Auth.NONE,
               versions=("v1",), rate_limit="registration")
async def token_validity(request: MatrixRequest) -> dict[str, Any]:
    token = request.require_query("token")
    return {"valid": request.services.registration.is_valid_token(token)}
