"""The one aiohttp handler every request goes through.

Route, authenticate, rate-limit, decode the body, call the endpoint, render the result: in that
order, with every failure turned into Matrix error JSON (client-server API, "Standard error
response") and CORS headers on every answer ("Web Browser Clients"). A 500 happens only for a
bug, and its log line and response carry the same request ID so an admin can find one from the
other.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
from aiohttp import web

from myelin.api.http.endpoint import Auth, Endpoint
from myelin.api.http.request import MatrixRequest
from myelin.api.http.router import MethodNotAllowed, Router
from myelin.errors import (
    MatrixError,
    bad_json,
    forbidden,
    missing_token,
    not_json,
    too_large,
    unrecognized,
)
from myelin.services.ratelimit import RateLimiter

if TYPE_CHECKING:
    from myelin.api.http.metrics import HttpMetrics
    from myelin.app import Services
    from myelin.services.auth import Requester

log = logging.getLogger("myelin.http")
access_log = logging.getLogger("myelin.access")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}
JSON_TYPE = "application/json"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type=JSON_TYPE,
        headers={**CORS_HEADERS, **(headers or {})},
    )


def error_response(error: MatrixError) -> web.Response:
    return json_response(error.status, error.to_json(), error.headers)


class Dispatcher:
    def __init__(
        self,
        endpoints: list[Endpoint],
        services: Services,
        *,
        rate_limiter: RateLimiter,
        max_body_bytes: int,
        trust_x_forwarded: bool,
        log_access: bool,
        metrics: HttpMetrics | None = None,
    ) -> None:
        for endpoint in endpoints:
            bucket = endpoint.rate_limit
            if bucket is not None and not rate_limiter.has_bucket(bucket):
                raise ValueError(f"{endpoint.name}: unknown rate-limit bucket {bucket}")
        self._router = Router(endpoints)
        self._services = services
        self._rate_limiter = rate_limiter
        self._max_body = max_body_bytes
        self._trust_x_forwarded = trust_x_forwarded
        self._log_access = log_access
        self._metrics = metrics
        # Request IDs: a per-process prefix plus a counter, unique across restarts in one log.
        self._id_prefix = os.urandom(3).hex()
        self._counter = itertools.count(1)

    def client_ip(self, request: web.BaseRequest) -> str:
        if self._trust_x_forwarded:
            forwarded = request.headers.get("X-Forwarded-For")
            if forwarded:
                return forwarded.split(",", 1)[0].strip()
        return request.remote or "-"

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = f"{request.method}-{self._id_prefix}-{next(self._counter)}"
        endpoint_name = "unmatched"
        user = "-"
        try:
            if request.method == "OPTIONS":
                # "MUST NOT perform any logic defined for the endpoints" on OPTIONS.
                response: web.StreamResponse = json_response(200, {})
            else:
                match = self._match(request)
                endpoint_name = match.endpoint.name
                response, user = await self._call(request, request_id, match.endpoint,
                                                  match.params)
        except MatrixError as e:
            response = error_response(e)
        except asyncio.CancelledError:
            self._log(request, request_id, 499, started, user)
            raise
        except Exception:
            log.exception("request %s failed", request_id)
            response = json_response(
                500,
                {"errcode": "M_UNKNOWN",
                 "error": f"Internal server error (request ID {request_id})"},
            )
        self._log(request, request_id, response.status, started, user)
        if self._metrics is not None:
            self._metrics.observe(endpoint_name, request.method, response.status,
                                  time.perf_counter() - started)
        return response

    def _match(self, request: web.BaseRequest) -> Any:
        try:
            match = self._router.match(request.method, request.rel_url.raw_path)
        except MethodNotAllowed as e:
            raise MatrixError(
                405, "M_UNRECOGNIZED", "Method not allowed for this endpoint",
                headers={"Allow": ", ".join(e.allowed)},
            ) from None
        except UnicodeDecodeError:
            raise MatrixError(400, "M_INVALID_PARAM", "Path is not valid UTF-8") from None
        if match is None:
            raise unrecognized()
        return match

    async def _call(
        self, request: web.BaseRequest, request_id: str, endpoint: Endpoint, params: dict[str, str]
    ) -> tuple[web.StreamResponse, str]:
        if endpoint.auth is Auth.FEDERATION:
            return await self._call_federation(request, request_id, endpoint, params)
        requester = await self._authenticate(request, endpoint.auth)
        user = requester.user_id if requester is not None else "-"
        ip = self.client_ip(request)
        if endpoint.rate_limit is not None and not (requester and requester.is_admin):
            self._rate_limiter.check(endpoint.rate_limit, requester.user_id if requester else ip)
        body = None
        if endpoint.body is not None:
            body = self._decode_json(await self._read_body(request), endpoint)
        result = await endpoint.handler(
            MatrixRequest(request, self._services, params, body, requester, request_id, ip)
        )
        return _to_response(result), user

    async def _call_federation(
        self, request: web.BaseRequest, request_id: str, endpoint: Endpoint, params: dict[str, str]
    ) -> tuple[web.StreamResponse, str]:
        """Server-server API, "Request Authentication": the signature covers the method, the
        URI as sent, both server names and the JSON body, so the body is read (and parsed)
        before the handler runs."""
        raw = await self._read_body(request)
        content: Any = None
        if raw.strip():
            try:
                content = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise not_json() from None
        origin = await self._services.federation_auth.authenticate(
            request.method, request.raw_path, request.headers.getall("Authorization", []),
            content)
        # It just reached us, so it is up: stop backing off our sends to it.
        self._services.federation_sender.destination_alive(origin)
        ip = self.client_ip(request)
        if endpoint.rate_limit is not None:
            self._rate_limiter.check(endpoint.rate_limit, origin)
        body = self._decode_json(raw, endpoint) if endpoint.body is not None else None
        result = await endpoint.handler(
            MatrixRequest(request, self._services, params, body, None, request_id, ip, origin)
        )
        return _to_response(result), origin

    async def _authenticate(self, request: web.BaseRequest, auth: Auth) -> Requester | None:
        if auth is Auth.NONE:
            return None
        token = _access_token(request)
        if token is None:
            if auth is Auth.OPTIONAL:
                return None
            raise missing_token()
        requester = await self._services.auth.authenticate(token)
        if auth is Auth.ADMIN and not requester.is_admin:
            raise forbidden("You are not a server admin")
        return requester

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        declared = request.content_length
        if declared is not None and declared > self._max_body:
            raise too_large()
        chunks = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > self._max_body:
                raise too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode_json(self, raw: bytes, endpoint: Endpoint) -> Any:
        if not raw.strip():
            if endpoint.body_optional:
                raw = b"{}"
            else:
                raise not_json("Request body is empty; expected a JSON object.")
        target = dict[str, Any] if endpoint.body is dict else endpoint.body
        try:
            return msgspec.json.decode(raw, type=target)
        except msgspec.ValidationError as e:
            raise bad_json(str(e)) from None
        except msgspec.DecodeError:
            raise not_json() from None

    def _log(
        self, request: web.BaseRequest, request_id: str, status: int, started: float, user: str
    ) -> None:
        if not self._log_access:
            return
        path = request.rel_url.raw_path
        if request.rel_url.raw_query_string:
            query = request.rel_url.query
            if "access_token" in query:
                path += "?" + "&".join(
                    f"{k}=<redacted>" if k == "access_token" else f"{k}={v}"
                    for k, v in query.items()
                )
            else:
                path += "?" + request.rel_url.raw_query_string
        access_log.info(
            "%s %s %s %s %d %.1fms %s", request_id, self.client_ip(request), request.method, path,
            status, (time.perf_counter() - started) * 1000, user,
        )


def _access_token(request: web.BaseRequest) -> str | None:
    """Client-server API, "Using access tokens": Authorization: Bearer, or the (deprecated)
    ``access_token`` query parameter; both at once is refused, as Synapse does."""
    header = request.headers.get("Authorization")
    from_header = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            from_header = value.strip()
    from_query = request.query.get("access_token")
    if from_header is not None and from_query is not None:
        raise missing_token("Mixing the Authorization header and access_token query parameter")
    return from_header if from_header is not None else from_query


def _to_response(result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        for name, value in CORS_HEADERS.items():
            result.headers.setdefault(name, value)
        return result
    if isinstance(result, tuple):
        status, body = result
        return json_response(status, body)
    return json_response(200, result)
