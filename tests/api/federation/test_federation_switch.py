"""federation.enabled: off, the server-server and key APIs are not served at all."""

from __future__ import annotations

import nacl.signing

from myelin.signing_key import SigningKey


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


async def test_old_signing_keys_are_published_as_old_verify_keys(start_server) -> None:  # type: ignore[no-untyped-def]
    # Server-server API, "Retrieving server keys": a retired key stays listed, with the time it
    # stopped being used, so events it signed can still be checked.
    retired = SigningKey("a_old", nacl.signing.SigningKey.generate())
    entry = f"{retired.key_id} {retired.verify_key_base64} 1700000000000"
    server = await start_server(federation={"old_signing_keys": [entry]})
    response = await server.client.get("/_matrix/key/v2/server")
    assert response.status == 200
    assert response.json["old_verify_keys"] == {
        "ed25519:a_old": {"key": retired.verify_key_base64, "expired_ts": 1700000000000}}
    assert "ed25519:a_old" not in response.json["verify_keys"]
