"""Client-server API, "Login" and "Logout" (password login; more flows come with accounts)."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import MatrixError, bad_json, forbidden
from myelin.ids import UserID

routes = Routes()


class LoginBody(msgspec.Struct, forbid_unknown_fields=False):
    type: str
    identifier: dict[str, Any] | None = None
    user: str | None = None  # deprecated form of identifier {"type": "m.id.user"}
    password: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    refresh_token: bool = False


@routes.client("GET", "/login", auth=Auth.NONE)
async def login_flows(request: MatrixRequest) -> dict[str, Any]:
    return {"flows": [{"type": "m.login.password"}]}


@routes.client("POST", "/login", auth=Auth.NONE, rate_limit="login", body=LoginBody)
async def login(request: MatrixRequest) -> dict[str, Any]:
    body: LoginBody = request.body
    if body.type != "m.login.password":
        raise MatrixError(400, "M_UNKNOWN", f"Unknown login type {body.type!r}")
    if body.password is None:
        raise bad_json("'password' is required for m.login.password")
    user_id = _user_id_from(body, request.services.config.server_name)
    session = await request.services.auth.login_with_password(
        user_id, body.password, device_id=body.device_id,
        display_name=body.initial_device_display_name,
    )
    return {
        "user_id": session.user_id,
        "access_token": session.access_token,
        "device_id": session.device_id,
        "home_server": request.services.config.server_name,
    }


def _user_id_from(body: LoginBody, server_name: str) -> str:
    """The user ID named by an ``m.id.user`` identifier: a localpart or a full user ID."""
    if body.identifier is not None:
        if body.identifier.get("type") != "m.id.user":
            raise MatrixError(400, "M_UNKNOWN", "Only m.id.user identifiers are supported")
        user = body.identifier.get("user")
    else:
        user = body.user
    if not isinstance(user, str) or not user:
        raise bad_json("identifier.user must be a non-empty string")
    if user.startswith("@"):
        parsed = UserID.parse(user)
        if parsed.domain != server_name:
            raise forbidden("Invalid username or password")
        return str(parsed)
    return f"@{user.lower()}:{server_name}"


@routes.client("POST", "/logout", auth=Auth.USER)
async def logout(request: MatrixRequest) -> dict[str, Any]:
    await request.services.auth.logout(request.user)
    return {}


@routes.client("POST", "/logout/all", auth=Auth.USER)
async def logout_all(request: MatrixRequest) -> dict[str, Any]:
    await request.services.auth.logout_all(request.user.user_id)
    return {}
