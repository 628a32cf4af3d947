"""POST /register with user-interactive auth, availability, tokens, guests."""

from __future__ import annotations

from harness import RunningServer

REGISTER = "/_matrix/client/v3/register"


async def open_server(start_server, **registration) -> RunningServer:
    return await start_server(registration={"enabled": True, **registration})


async def test_register_dummy_flow(start_server) -> None:
    server = await open_server(start_server)
    client = server.client
    first = await client.post(REGISTER, {"username": "Alice", "password": "pw"})
    assert first.status == 401
    assert first.json["flows"] == [{"stages": ["m.login.dummy"]}]
    assert "errcode" not in first.json and first.json["session"]
    done = await client.post(REGISTER, {
        "username": "Alice", "password": "pw", "initial_device_display_name": "Phone",
        "auth": {"type": "m.login.dummy", "session": first.json["session"]}})
    assert done.status == 200, done
    assert done.json["user_id"] == "@alice:test.local"  # downcased, as the spec asks
    client.token = done.json["access_token"]
    who = await client.get("/_matrix/client/v3/account/whoami")
    assert who.json["device_id"] == done.json["device_id"]
    assert (await client.login("alice", "pw")).status == 200


async def test_register_without_session_completes_in_one_step(start_server) -> None:
    server = await open_server(start_server)
    resp = await server.client.post(REGISTER, {"username": "bob", "password": "pw",
                                               "auth": {"type": "m.login.dummy"}})
    assert resp.status == 200 and resp.json["user_id"] == "@bob:test.local"


async def test_register_inhibit_login_and_generated_name(start_server) -> None:
    server = await open_server(start_server)
    resp = await server.client.post(REGISTER, {"password": "pw", "inhibit_login": True,
                                               "auth": {"type": "m.login.dummy"}})
    assert resp.status == 200
    assert resp.json["user_id"].startswith("@u") and "access_token" not in resp.json


async def test_register_errors(start_server) -> None:
    server = await open_server(start_server)
    client = server.client
    dummy = {"type": "m.login.dummy"}
    ok = await client.post(REGISTER, {"username": "carol", "password": "pw", "auth": dummy})
    assert ok.status == 200
    taken = await client.post(REGISTER, {"username": "carol", "password": "pw", "auth": dummy})
    assert taken.status == 400 and taken.json["errcode"] == "M_USER_IN_USE"
    bad = await client.post(REGISTER, {"username": "no spaces", "password": "pw", "auth": dummy})
    assert bad.status == 400 and bad.json["errcode"] == "M_INVALID_USERNAME"
    nopw = await client.post(REGISTER, {"username": "dan", "auth": dummy})
    assert nopw.status == 400 and nopw.json["errcode"] == "M_MISSING_PARAM"
    unknown_session = await client.post(REGISTER, {"username": "erin", "password": "pw",
                                                   "auth": {"type": "m.login.dummy",
                                                            "session": "nope"}})
    assert unknown_session.status == 400
    wrong_stage = await client.post(REGISTER, {"username": "erin", "password": "pw",
                                               "auth": {"type": "m.login.password"}})
    assert wrong_stage.status == 401 and wrong_stage.json["errcode"] == "M_UNRECOGNIZED"
    kind = await client.post(REGISTER + "?kind=robot", {"auth": dummy})
    assert kind.status == 400 and kind.json["errcode"] == "M_INVALID_PARAM"
    shape = await client.post(REGISTER, {"username": 5})
    assert shape.status == 400 and shape.json["errcode"] == "M_BAD_JSON"


async def test_registration_disabled_by_default(homeserver: RunningServer) -> None:
    resp = await homeserver.client.post(REGISTER, {"username": "x", "password": "pw",
                                                   "auth": {"type": "m.login.dummy"}})
    assert resp.status == 403 and resp.json["errcode"] == "M_FORBIDDEN"


async def test_guests_disabled_by_default(start_server) -> None:
    server = await open_server(start_server)
    resp = await server.client.post(REGISTER + "?kind=guest", {})
    assert resp.status == 403 and resp.json["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    guests = await open_server(start_server, allow_guests=True)
    resp = await guests.client.post(REGISTER + "?kind=guest", {})
    assert resp.status == 200
    who = await guests.client.get("/_matrix/client/v3/account/whoami",
                                  token=resp.json["access_token"])
    assert who.json["is_guest"] is True


async def test_registration_token_flow(start_server) -> None:
    server = await open_server(start_server, tokens=["letmein"])
    client = server.client
    first = await client.post(REGISTER, {"username": "tok", "password": "pw"})
    assert first.json["flows"] == [{"stages": ["m.login.registration_token"]}]
    session = first.json["session"]
    dummy = await client.post(REGISTER, {"username": "tok", "password": "pw",
                                         "auth": {"type": "m.login.dummy", "session": session}})
    assert dummy.status == 401  # dummy is not a stage of this flow
    wrong = await client.post(REGISTER, {"username": "tok", "password": "pw", "auth": {
        "type": "m.login.registration_token", "token": "guess", "session": session}})
    assert wrong.status == 401 and wrong.json["errcode"] == "M_FORBIDDEN"
    assert wrong.json["session"] == session
    right = await client.post(REGISTER, {"username": "tok", "password": "pw", "auth": {
        "type": "m.login.registration_token", "token": "letmein", "session": session}})
    assert right.status == 200 and right.json["user_id"] == "@tok:test.local"
    validity = "/_matrix/client/v1/register/m.login.registration_token/validity?token="
    assert (await client.get(validity + "letmein")).json == {"valid": True}
    assert (await client.get(validity + "nope")).json == {"valid": False}


async def test_username_available(start_server) -> None:
    server = await open_server(start_server)
    await server.services.auth.register("taken", "pw")
    available = "/_matrix/client/v3/register/available?username="
    assert (await server.client.get(available + "free")).json == {"available": True}
    taken = await server.client.get(available + "taken")
    assert taken.status == 400 and taken.json["errcode"] == "M_USER_IN_USE"
    bad = await server.client.get(available + "b%20ad")
    assert bad.status == 400 and bad.json["errcode"] == "M_INVALID_USERNAME"
    missing = await server.client.get("/_matrix/client/v3/register/available")
    assert missing.status == 400 and missing.json["errcode"] == "M_MISSING_PARAM"


async def test_registration_rate_limit_counts_accounts_not_auth_steps(start_server) -> None:
    server = await start_server(registration={"enabled": True}, rate_limits={
        "enabled": True, "registration": {"per_second": 0.001, "burst": 2}})
    client = server.client
    for name in ("one", "two"):
        first = await client.post(REGISTER, {"username": name, "password": "pw"})
        assert first.status == 401  # the UIA challenge is not counted
        done = await client.post(REGISTER, {"username": name, "password": "pw", "auth": {
            "type": "m.login.dummy", "session": first.json["session"]}})
        assert done.status == 200, done
    third = await client.post(REGISTER, {"username": "three", "password": "pw",
                                         "auth": {"type": "m.login.dummy"}})
    assert third.status == 429 and third.json["errcode"] == "M_LIMIT_EXCEEDED"
