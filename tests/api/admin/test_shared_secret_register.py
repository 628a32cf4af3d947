"""Synapse-compatible shared-secret registration, as register_new_matrix_user performs it."""

from __future__ import annotations

import hashlib
import hmac

SECRET = "s3cr3t"
PATH = "/_synapse/admin/v1/register"


def mac(nonce: str, user: str, password: str, admin: bool) -> str:
    msg = "\x00".join([nonce, user, password, "admin" if admin else "notadmin"]).encode()
    return hmac.new(SECRET.encode(), msg, hashlib.sha1).hexdigest()


async def test_shared_secret_registration(start_server) -> None:
    server = await start_server(registration={"shared_secret": SECRET})
    client = server.client
    nonce = (await client.get(PATH)).json["nonce"]
    body = {"nonce": nonce, "username": "admin1", "password": "pw", "admin": True,
            "mac": mac(nonce, "admin1", "pw", True)}
    resp = await client.post(PATH, body)
    assert resp.status == 200, resp
    assert resp.json["user_id"] == "@admin1:test.local"
    record = await server.services.auth._users.get_user("@admin1:test.local")
    assert record.is_admin
    replay = await client.post(PATH, body)  # a nonce works once
    assert replay.status == 400

    nonce = (await client.get(PATH)).json["nonce"]
    forged = await client.post(PATH, {"nonce": nonce, "username": "x", "password": "pw",
                                      "admin": True, "mac": mac(nonce, "x", "pw", False)})
    assert forged.status == 403 and forged.json["errcode"] == "M_FORBIDDEN"


async def test_shared_secret_disabled_without_secret(homeserver) -> None:
    resp = await homeserver.client.get(PATH)
    assert resp.status == 400 and resp.json["errcode"] == "M_UNKNOWN"
