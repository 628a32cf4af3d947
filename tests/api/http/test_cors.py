"""Client-server API, "Web Browser Clients": CORS headers everywhere, OPTIONS preflight."""

from __future__ import annotations

from harness import RunningServer

EXPECTED = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}


async def test_preflight_answers_without_running_the_endpoint(homeserver: RunningServer) -> None:
    # OPTIONS on an authenticated endpoint must not demand a token (no endpoint logic runs).
    resp = await homeserver.client.request("OPTIONS", "/_matrix/client/v3/account/whoami")
    assert resp.status == 200
    for name, value in EXPECTED.items():
        assert resp.headers[name] == value
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= methods


async def test_normal_responses_carry_cors_headers(homeserver: RunningServer) -> None:
    for path in ("/_matrix/client/versions", "/health", "/.well-known/matrix/client"):
        resp = await homeserver.client.get(path)
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
