"""What a handler receives: the parsed request, its requester and the services to call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from myelin.errors import MatrixError, missing_param

if TYPE_CHECKING:
    from myelin.app import Services
    from myelin.services.auth import Requester


@dataclass(slots=True)
class MatrixRequest:
    http: web.BaseRequest
    services: Services
    params: dict[str, str]  # path parameters, already percent-decoded
    body: Any  # the decoded JSON body (dict or the endpoint's Struct), or None
    requester: Requester | None
    request_id: str
    client_ip: str
    origin: str | None = None  # the authenticated server, on Auth.FEDERATION endpoints

    @property
    def origin_server(self) -> str:
        """The requesting server; only valid on endpoints with Auth.FEDERATION."""
        assert self.origin is not None, "endpoint declared no federation auth but reads origin"
        return self.origin

    @property
    def user(self) -> Requester:
        """The authenticated requester; only valid on endpoints with Auth.USER or stricter."""
        assert self.requester is not None, "endpoint declared no auth but reads the requester"
        return self.requester

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.http.query.get(name, default)

    def query_int(self, name: str, default: int) -> int:
        raw = self.http.query.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise MatrixError(
                400, "M_INVALID_PARAM", f"Query parameter {name!r} must be an integer"
            ) from None

    def require_query(self, name: str) -> str:
        value = self.http.query.get(name)
        if value is None:
            raise missing_param(f"Missing query parameter {name!r}")
        return value
