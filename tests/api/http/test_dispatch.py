"""Dispatcher behaviour that needs endpoints of its own: a crashing handler, path decoding."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import RawTestServer, TestClient

from myelin.api.http.dispatch import Dispatcher
from myelin.api.http.endpoint import Auth, Routes
from myelin.config import RateLimitsConfig
from myelin.services.ratelimit import RateLimiter

routes = Routes()


@routes.route("GET", "/boom", auth=Auth.NONE)
async def boom(request: Any) -> dict[str, Any]:
    raise KeyError("a bug")


@routes.route("GET", "/echo/{first}/{second}", auth=Auth.NONE)
async def echo(request: Any) -> dict[str, Any]:
    return request.params


@routes.route("GET", "/echo/fixed/{second}", auth=Auth.NONE)
async def echo_fixed(request: Any) -> dict[str, Any]:
    return {"fixed": request.params["second"]}


@pytest.fixture
async def client() -> Any:
    dispatcher = Dispatcher(routes.endpoints, services=None,  # type: ignore[arg-type]
                            rate_limiter=RateLimiter(RateLimitsConfig()), max_body_bytes=1024,
                            trust_x_forwarded=False, log_access=True)
    async with TestClient(RawTestServer(dispatcher.handle)) as c:
        yield c


async def test_handler_bug_is_500_with_request_id_logged(client: Any, caplog: Any) -> None:
    with caplog.at_level(logging.ERROR, logger="myelin.http"):
        resp = await client.get("/boom")
    assert resp.status == 500
    body = await resp.json()
    assert body["errcode"] == "M_UNKNOWN"
    request_id = body["error"].split("request ID ")[1].rstrip(")")
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)
    assert "KeyError" not in body["error"]  # no traceback or internals leak to the client


async def test_path_parameters_are_decoded_after_splitting(client: Any) -> None:
    resp = await client.get("/echo/a%2Fb/%F0%9F%98%80")
    assert await resp.json() == {"first": "a/b", "second": "\U0001f600"}


async def test_literal_segments_win_over_parameters(client: Any) -> None:
    assert await (await client.get("/echo/fixed/x")).json() == {"fixed": "x"}
    assert await (await client.get("/echo/other/x")).json() == {"first": "other", "second": "x"}


async def test_invalid_utf8_parameter_is_400(client: Any) -> None:
    resp = await client.get("/echo/%ff/x")
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_INVALID_PARAM"


async def test_access_log_redacts_query_token(client: Any, caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="myelin.access"):
        await client.get("/echo/a/b?access_token=secret123&x=1")
    lines = [r.getMessage() for r in caplog.records if r.name == "myelin.access"]
    assert lines and "secret123" not in lines[-1] and "access_token=<redacted>" in lines[-1]
    assert " 200 " in lines[-1]
