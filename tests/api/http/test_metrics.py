"""Prometheus metrics: off by default, on their own listener when enabled."""

from __future__ import annotations


async def test_metrics_listener(start_server, http_session) -> None:
    server = await start_server(metrics={"enabled": True, "port": 0})
    await server.client.get("/_matrix/client/versions")
    await server.client.get("/_matrix/client/v3/nothing")
    port = server.server.metrics_port
    async with http_session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert 'myelin_http_requests_total{endpoint="discovery.versions",method="GET",status="200"}' \
        in text
    assert 'endpoint="unmatched",method="GET",status="404"' in text
    assert "myelin_http_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text


async def test_metrics_not_served_on_client_port(homeserver) -> None:
    assert homeserver.server.metrics_port is None
    resp = await homeserver.client.get("/metrics")
    assert resp.status == 404
