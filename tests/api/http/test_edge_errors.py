"""The HTTP edge answers every malformed request with Matrix error JSON and the spec's status
(client-server API, "Standard error response" and "Common error codes")."""

from __future__ import annotations

import asyncio

from harness import RunningServer

LOGIN = "/_matrix/client/v3/login"


def assert_error(resp, status: int, errcode: str) -> None:
    assert resp.status == status, resp
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    body = resp.json
    assert body["errcode"] == errcode, body
    assert isinstance(body["error"], str) and body["error"]


async def test_unknown_endpoint_is_404_unrecognized(homeserver: RunningServer) -> None:
    resp = await homeserver.client.get("/_matrix/client/v3/no/such/thing")
    assert_error(resp, 404, "M_UNRECOGNIZED")


async def test_unknown_root_paths_are_404_unrecognized(homeserver: RunningServer) -> None:
    for path in ("/", "/favicon.ico", "/_matrix", "/_matrix/client/v3/account/whoami/extra"):
        assert_error(await homeserver.client.get(path), 404, "M_UNRECOGNIZED")


async def test_wrong_method_is_405_unrecognized(homeserver: RunningServer) -> None:
    resp = await homeserver.client.request("DELETE", LOGIN)
    assert_error(resp, 405, "M_UNRECOGNIZED")
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "POST"}


async def test_invalid_json_is_400_not_json(homeserver: RunningServer) -> None:
    for raw in (b"{not json", b"{\"type\": ", b"\xff\xfe", b"   "):
        resp = await homeserver.client.post(LOGIN, data=raw)
        assert_error(resp, 400, "M_NOT_JSON")


async def test_wrong_shape_is_400_bad_json(homeserver: RunningServer) -> None:
    for body in ([1, 2], "text", {"password": "x"}, {"type": 5}, {"type": "m.login.password",
                                                                   "identifier": "nope"}):
        resp = await homeserver.client.post(LOGIN, body)
        assert_error(resp, 400, "M_BAD_JSON")


async def test_missing_token_is_401_missing_token(homeserver: RunningServer) -> None:
    resp = await homeserver.client.get("/_matrix/client/v3/account/whoami")
    assert_error(resp, 401, "M_MISSING_TOKEN")
    resp = await homeserver.client.get("/_matrix/client/v3/account/whoami",
                                       headers={"Authorization": "Basic abc"})
    assert_error(resp, 401, "M_MISSING_TOKEN")


async def test_unknown_token_is_401_unknown_token(homeserver: RunningServer) -> None:
    resp = await homeserver.client.get("/_matrix/client/v3/account/whoami", token="nope")
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")
    resp = await homeserver.client.get("/_matrix/client/v3/account/whoami?access_token=nope")
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


async def test_body_too_large_is_413_too_large(start_server) -> None:
    server = await start_server(listen={"max_json_body_bytes": 1024})
    big = b'{"type": "m.login.password", "password": "' + b"x" * 2000 + b'"}'
    assert_error(await server.client.post(LOGIN, data=big), 413, "M_TOO_LARGE")


async def test_chunked_body_too_large_is_413(start_server, http_session) -> None:
    """Without Content-Length the limit is enforced while reading, not trusted from a header."""
    server = await start_server(listen={"max_json_body_bytes": 1024})

    async def chunks():
        for _ in range(10):
            yield b" " * 500

    async with http_session.post(server.url + LOGIN, data=chunks()) as resp:
        assert resp.status == 413
        assert (await resp.json())["errcode"] == "M_TOO_LARGE"


async def test_bad_percent_encoding_in_path_is_400(homeserver: RunningServer) -> None:
    # A path parameter that is not UTF-8 once decoded.
    resp = await homeserver.client.get("/_matrix/client/v3/login%ff/x")
    assert resp.status in (400, 404)
    assert resp.json["errcode"] in ("M_INVALID_PARAM", "M_UNRECOGNIZED")


async def test_rate_limit_is_429_with_retry_after(start_server) -> None:
    server = await start_server(rate_limits={"enabled": True,
                                             "login": {"per_second": 0.01, "burst": 2}})
    body = {"type": "m.login.password", "user": "nobody", "password": "x"}
    statuses = [(await server.client.post(LOGIN, body)).status for _ in range(2)]
    assert statuses == [403, 403]
    resp = await server.client.post(LOGIN, body)
    assert_error(resp, 429, "M_LIMIT_EXCEEDED")
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.json["retry_after_ms"] > 0


async def test_rate_limits_can_be_switched_off(start_server) -> None:
    server = await start_server(rate_limits={"enabled": False,
                                             "login": {"per_second": 0.01, "burst": 1}})
    body = {"type": "m.login.password", "user": "nobody", "password": "x"}
    statuses = {(await server.client.post(LOGIN, body)).status for _ in range(5)}
    assert statuses == {403}


async def test_concurrent_malformed_requests_never_500(homeserver: RunningServer) -> None:
    bodies = [b"", b"null", b"[]", b"{}", b'{"type": null}', b"\x00" * 10, b"1e999999"]
    results = await asyncio.gather(*(homeserver.client.post(LOGIN, data=b) for b in bodies * 5))
    assert all(400 <= r.status < 500 for r in results), results


async def test_raw_socket_garbage_does_not_kill_server(homeserver: RunningServer) -> None:
    host, port = "127.0.0.1", homeserver.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    await reader.read(1000)
    writer.close()
    resp = await homeserver.client.get("/_matrix/client/versions")
    assert resp.status == 200


async def test_errors_carry_cors_headers(homeserver: RunningServer) -> None:
    resp = await homeserver.client.get("/_matrix/client/v3/nothing")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_client_disconnect_midway_is_harmless(homeserver: RunningServer) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", homeserver.server.port)
    writer.write(b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: 100\r\n\r\n{\"type\"")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.05)
    resp = await homeserver.client.get("/_matrix/client/versions")
    assert resp.status == 200

