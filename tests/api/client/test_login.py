"""Password login, whoami and logout over real HTTP, with accounts made as the CLI makes them."""

from __future__ import annotations

from harness import RunningServer


async def register(server: RunningServer, localpart: str, password: str,
                   admin: bool = False) -> str:
    return await server.services.auth.register(localpart, password, admin=admin)


async def test_login_flows(homeserver: RunningServer) -> None:
    resp = await homeserver.client.get("/_matrix/client/v3/login")
    assert resp.status == 200
    assert {"type": "m.login.password"} in resp.json["flows"]


async def test_login_whoami_logout(homeserver: RunningServer) -> None:
    user_id = await register(homeserver, "alice", "correct horse")
    client = homeserver.client
    resp = await client.login("alice", "correct horse")
    assert resp.status == 200, resp
    assert resp.json["user_id"] == user_id == "@alice:test.local"
    device_id = resp.json["device_id"]

    whoami = await client.get("/_matrix/client/v3/account/whoami")
    assert whoami.status == 200
    assert whoami.json == {"user_id": user_id, "device_id": device_id, "is_guest": False}
    r0 = await client.get("/_matrix/client/r0/account/whoami")
    assert r0.status == 200 and r0.json["user_id"] == user_id

    assert (await client.post("/_matrix/client/v3/logout")).status == 200
    after = await client.get("/_matrix/client/v3/account/whoami")
    assert after.status == 401 and after.json["errcode"] == "M_UNKNOWN_TOKEN"


async def test_query_parameter_token(homeserver: RunningServer) -> None:
    await register(homeserver, "bob", "pw")
    token = (await homeserver.client.login("bob", "pw")).json["access_token"]
    homeserver.client.token = None
    resp = await homeserver.client.get(f"/_matrix/client/v3/account/whoami?access_token={token}")
    assert resp.status == 200 and resp.json["user_id"] == "@bob:test.local"
    both = await homeserver.client.get(
        f"/_matrix/client/v3/account/whoami?access_token={token}", token=token)
    assert both.status == 401 and both.json["errcode"] == "M_MISSING_TOKEN"


async def test_login_with_full_user_id_and_given_device(homeserver: RunningServer) -> None:
    await register(homeserver, "carol", "pw")
    resp = await homeserver.client.post("/_matrix/client/v3/login", {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "@carol:test.local"},
        "password": "pw", "device_id": "MYPHONE", "initial_device_display_name": "Phone",
    })
    assert resp.status == 200 and resp.json["device_id"] == "MYPHONE"


async def test_wrong_password_and_unknown_user_look_the_same(homeserver: RunningServer) -> None:
    await register(homeserver, "dave", "pw")
    wrong = await homeserver.client.login("dave", "nope")
    unknown = await homeserver.client.login("nobody", "nope")
    assert wrong.status == unknown.status == 403
    assert wrong.json == unknown.json
    assert wrong.json["errcode"] == "M_FORBIDDEN"


async def test_unknown_login_type(homeserver: RunningServer) -> None:
    resp = await homeserver.client.post("/_matrix/client/v3/login", {"type": "m.login.magic"})
    assert resp.status == 400 and resp.json["errcode"] == "M_UNKNOWN"
