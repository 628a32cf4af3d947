"""federation.enabled: off, the server-server and key APIs are not served at all."""

from __future__ import annotations


async def test_federation_off_serves_no_federation_endpoints(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(federation={"enabled": False})
    for path in ("/_matrix/key/v2/server", "/_matrix/federation/v1/version"):
        response = await server.client.get(path)
        assert response.status == 404, path
        assert response.json["errcode"] == "M_UNRECOGNIZED"
    assert (await server.client.get("/health")).status == 200


async def test_federation_on_serves_keys_on_the_main_listener(homeserver) -> None:  # type: ignore[no-untyped-def]
    response = await homeserver.client.get("/_matrix/key/v2/server")
    assert response.status == 200
    assert response.json["server_name"] == "test.local"
    version = await homeserver.client.get("/_matrix/federation/v1/version")
    assert version.json["server"]["name"] == "Myelin"
