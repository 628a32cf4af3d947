"""/versions, /.well-known/matrix/{client,server} and /health."""

from __future__ import annotations

from harness import RunningServer


async def test_versions(homeserver: RunningServer) -> None:
    resp = await homeserver.client.get("/_matrix/client/versions")
    assert resp.status == 200
    body = resp.json
    assert isinstance(body["versions"], list)
    assert isinstance(body["unstable_features"], dict)


async def test_well_known_client_defaults_to_listener(homeserver: RunningServer) -> None:
    resp = await homeserver.client.get("/.well-known/matrix/client")
    assert resp.status == 200
    assert resp.json["m.homeserver"]["base_url"].startswith("http://127.0.0.1:")


async def test_well_known_uses_public_baseurl(start_server) -> None:
    server = await start_server(public_baseurl="https://matrix.example.org/")
    client = (await server.client.get("/.well-known/matrix/client")).json
    assert client == {"m.homeserver": {"base_url": "https://matrix.example.org"}}
    fed = (await server.client.get("/.well-known/matrix/server")).json
    assert fed == {"m.server": "matrix.example.org:443"}


async def test_well_known_server_explicit(start_server) -> None:
    server = await start_server(well_known={"server": "fed.example.org:8448"})
    assert (await server.client.get("/.well-known/matrix/server")).json == {
        "m.server": "fed.example.org:8448"}


async def test_health(homeserver: RunningServer) -> None:
    resp = await homeserver.client.get("/health")
    assert resp.status == 200
    assert resp.body == b"OK"
