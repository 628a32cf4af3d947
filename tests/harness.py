"""Test harness: real homeservers on loopback and a small HTTP client to talk to them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from myelin.config import Config, parse_config
from myelin.server import Homeserver


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def test_config(data_dir: Path, postgres_dsn: str | None = None, **overrides: Any) -> Config:
    """A config for a server on a free loopback port with cheap password hashing."""
    raw: dict[str, Any] = {
        "server_name": "test.local",
        "listen": {"host": "127.0.0.1", "port": 0, "shutdown_grace_seconds": 5.0},
        "passwords": {"bcrypt_rounds": 4},
        "logging": {"level": "WARNING"},
        # Off unless a test is about rate limiting: tests fire requests faster than people do.
        "rate_limits": {"enabled": False},
    }
    if postgres_dsn is not None:
        raw["database"] = {"engine": "postgresql", "postgres_dsn": postgres_dsn}
    return parse_config(merge(raw, overrides), config_dir=data_dir)


class Response:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


class Client:
    """Speaks plain HTTP to a server, returning status, headers and body without judging them."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.token: str | None = None

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        data: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        headers = dict(headers or {})
        token = token if token is not None else self.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if json is not None:
            data = orjson.dumps(json)
        async with self.session.request(method, self.base_url + path, data=data,
                                        headers=headers) as resp:
            return Response(resp.status, resp.headers, await resp.read())

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("POST", path, json, **kw)

    async def login(self, user: str, password: str) -> Response:
        resp = await self.post("/_matrix/client/v3/login", {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        })
        if resp.status == 200:
            self.token = resp.json["access_token"]
        return resp


class RunningServer:
    def __init__(self, server: Homeserver, client: Client) -> None:
        self.server = server
        self.client = client

    @property
    def url(self) -> str:
        return self.client.base_url

    @property
    def services(self) -> Any:
        return self.server.services


async def logged_in_user(server: RunningServer, name: str, password: str = "pw") -> Client:
    """Register ``name`` (if new) the way the CLI does, and log a fresh device in."""
    if await server.services.auth.is_localpart_available(name):
        await server.services.auth.register(name, password)
    client = Client(server.url, server.client.session)
    response = await client.login(name, password)
    assert response.status == 200, response
    return client
