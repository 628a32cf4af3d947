"""Password login, whoami and logout over real HTTP, with accounts made as the CLI makes them."""

from __future__ import annotations

import asyncio

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


async def test_third_party_identifiers_never_match(homeserver: RunningServer) -> None:
    for identifier in ({"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"},
                       {"type": "m.id.phone", "country": "GB", "phone": "123"}):
        resp = await homeserver.client.post("/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": identifier, "password": "x"})
        assert resp.status == 403 and resp.json["errcode"] == "M_FORBIDDEN"
    odd = await homeserver.client.post("/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.bogus"}, "password": "x"})
    assert odd.status == 400


async def test_refresh_tokens(start_server) -> None:
    server = await start_server(sessions={"refreshable_access_token_lifetime_s": 60})
    await register(server, "rita", "pw")
    client = server.client
    resp = await client.post("/_matrix/client/v3/login", {
        "type": "m.login.password", "user": "rita", "password": "pw", "refresh_token": True})
    assert resp.status == 200
    assert resp.json["expires_in_ms"] == 60_000 and resp.json["refresh_token"]
    first_refresh = resp.json["refresh_token"]
    refreshed = await client.post("/_matrix/client/v3/refresh",
                                  {"refresh_token": first_refresh})
    assert refreshed.status == 200
    new_token = refreshed.json["access_token"]
    # The old refresh token still works until the new pair is used (lost-response retries).
    retry = await client.post("/_matrix/client/v3/refresh", {"refresh_token": first_refresh})
    assert retry.status == 200
    who = await client.get("/_matrix/client/v3/account/whoami", token=retry.json["access_token"])
    assert who.status == 200 and who.json["device_id"] == resp.json["device_id"]
    gone = await client.post("/_matrix/client/v3/refresh", {"refresh_token": first_refresh})
    assert gone.status == 401 and gone.json["errcode"] == "M_UNKNOWN_TOKEN"
    assert (await client.get("/_matrix/client/v3/account/whoami", token=new_token)).status == 200
    bogus = await client.post("/_matrix/client/v3/refresh", {"refresh_token": "nope"})
    assert bogus.status == 401 and bogus.json["errcode"] == "M_UNKNOWN_TOKEN"


async def test_expired_access_token_is_soft_logout(start_server) -> None:
    server = await start_server(sessions={"refreshable_access_token_lifetime_s": 1})
    await register(server, "sam", "pw")
    resp = await server.client.post("/_matrix/client/v3/login", {
        "type": "m.login.password", "user": "sam", "password": "pw", "refresh_token": True})
    token = resp.json["access_token"]
    assert (await server.client.get("/_matrix/client/v3/account/whoami", token=token)).status \
        == 200
    await asyncio.sleep(1.1)
    expired = await server.client.get("/_matrix/client/v3/account/whoami", token=token)
    assert expired.status == 401
    assert expired.json == {"errcode": "M_UNKNOWN_TOKEN", "error": expired.json["error"],
                            "soft_logout": True}


async def test_login_token_flow(homeserver: RunningServer) -> None:
    await register(homeserver, "tina", "pw")
    client = homeserver.client
    await client.login("tina", "pw")
    first = await client.post("/_matrix/client/v1/login/get_token", {})
    assert first.status == 401
    auth = {"type": "m.login.password", "session": first.json["session"],
            "identifier": {"type": "m.id.user", "user": "tina"}, "password": "pw"}
    got = await client.post("/_matrix/client/v1/login/get_token", {"auth": auth})
    assert got.status == 200 and got.json["expires_in_ms"] > 0
    login_token = got.json["login_token"]
    other = await homeserver.client.post("/_matrix/client/v3/login",
                                         {"type": "m.login.token", "token": login_token},
                                         token="")
    assert other.status == 200 and other.json["user_id"] == "@tina:test.local"
    reused = await homeserver.client.post("/_matrix/client/v3/login",
                                          {"type": "m.login.token", "token": login_token},
                                          token="")
    assert reused.status == 403
