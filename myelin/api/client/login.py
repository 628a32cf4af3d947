"""Client-server API, "Login", "Refreshing access tokens" and "Logout"."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import MatrixError, bad_json, forbidden
from myelin.ids import UserID
from myelin.services.auth import Session

routes = Routes()

PASSWORD = "m.login.password"
TOKEN = "m.login.token"


class LoginBody(msgspec.Struct):
    type: str
    identifier: dict[str, Any] | None = None
    user: str | None = None  # deprecated form of identifier {"type": "m.id.user"}
    password: str | None = None
    token: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    refresh_token: bool = False


class RefreshBody(msgspec.Struct):
    refresh_token: str


class GetTokenBody(msgspec.Struct):
    auth: dict[str, Any] | None = None


def session_json(session: Session, server_name: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "user_id": session.user_id,
        "access_token": session.access_token,
        "device_id": session.device_id,
        "home_server": server_name,
    }
    if session.refresh_token is not None:
        out["refresh_token"] = session.refresh_token
        out["expires_in_ms"] = session.expires_in_ms
    return out


@routes.client("GET", "/login", auth=Auth.NONE)
async def login_flows(request: MatrixRequest) -> dict[str, Any]:
    return {"flows": [{"type": PASSWORD}, {"type": TOKEN, "get_login_token": True}]}


@routes.client("POST", "/login", auth=Auth.NONE, rate_limit="login", body=LoginBody)
async def login(request: MatrixRequest) -> dict[str, Any]:
    body: LoginBody = request.body
    auth = request.services.auth
    server_name = request.services.config.server_name
    if body.type == PASSWORD:
        if body.password is None:
            raise bad_json("'password' is required for m.login.password")
        session = await auth.login_with_password(
            _user_id_from(body, server_name), body.password, device_id=body.device_id,
            display_name=body.initial_device_display_name, refreshable=body.refresh_token,
        )
    elif body.type == TOKEN:
        if body.token is None:
            raise bad_json("'token' is required for m.login.token")
        session = await auth.login_with_token(
            body.token, device_id=body.device_id,
            display_name=body.initial_device_display_name, refreshable=body.refresh_token,
        )
    else:
        raise MatrixError(400, "M_UNKNOWN", f"Unknown login type {body.type!r}")
    return session_json(session, server_name)


def _user_id_from(body: LoginBody, server_name: str) -> str:
    """Client-server API, "Identifier types": m.id.user names the account directly; this server
    binds no third-party identifiers, so m.id.thirdparty and m.id.phone never match one."""
    if body.identifier is not None:
        kind = body.identifier.get("type")
        if kind in ("m.id.thirdparty", "m.id.phone"):
            raise forbidden("Invalid username or password")
        if kind != "m.id.user":
            raise MatrixError(400, "M_UNKNOWN", f"Unknown identifier type {kind!r}")
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


@routes.client("POST", "/refresh", auth=Auth.NONE, body=RefreshBody)
async def refresh(request: MatrixRequest) -> dict[str, Any]:
    body: RefreshBody = request.body
    session = await request.services.auth.refresh(body.refresh_token)
    return {"access_token": session.access_token, "refresh_token": session.refresh_token,
            "expires_in_ms": session.expires_in_ms}


@routes.client("POST", "/login/get_token", versions=("v1",), body=GetTokenBody,
               body_optional=True)
async def get_login_token(request: MatrixRequest) -> dict[str, Any]:
    body: GetTokenBody = request.body
    token, lifetime_ms = await request.services.accounts.create_login_token(request.user,
                                                                            body.auth)
    return {"login_token": token, "expires_in_ms": lifetime_ms}


@routes.client("POST", "/logout", auth=Auth.USER)
async def logout(request: MatrixRequest) -> dict[str, Any]:
    await request.services.auth.logout(request.user)
    return {}


@routes.client("POST", "/logout/all", auth=Auth.USER)
async def logout_all(request: MatrixRequest) -> dict[str, Any]:
    await request.services.auth.logout_all(request.user.user_id)
    return {}
