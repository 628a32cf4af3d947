"""Devices, password change, deactivation, logout/all and capabilities."""

from __future__ import annotations

from harness import Client, RunningServer


async def logged_in(server: RunningServer, user: str = "alice", password: str = "pw",
                    device: str | None = None) -> Client:
    if await server.services.auth.is_localpart_available(user):
        await server.services.auth.register(user, password)
    client = Client(server.url, server.client.session)
    body = {"type": "m.login.password", "user": user, "password": password}
    if device:
        body["device_id"] = device
    resp = await client.post("/_matrix/client/v3/login", body)
    assert resp.status == 200, resp
    client.token = resp.json["access_token"]
    return client


def password_auth(session: str | None, password: str = "pw", user: str = "alice") -> dict:
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password}
    if session:
        auth["session"] = session
    return auth


async def test_list_get_rename_devices(homeserver: RunningServer) -> None:
    phone = await logged_in(homeserver, device="PHONE")
    await logged_in(homeserver, device="LAPTOP")
    listed = await phone.get("/_matrix/client/v3/devices")
    assert sorted(d["device_id"] for d in listed.json["devices"]) == ["LAPTOP", "PHONE"]
    assert (await phone.request("PUT", "/_matrix/client/v3/devices/PHONE",
                                {"display_name": "My phone"})).status == 200
    got = await phone.get("/_matrix/client/v3/devices/PHONE")
    assert got.json == {"device_id": "PHONE", "display_name": "My phone"}
    missing = await phone.get("/_matrix/client/v3/devices/NOPE")
    assert missing.status == 404 and missing.json["errcode"] == "M_NOT_FOUND"
    rename_missing = await phone.request("PUT", "/_matrix/client/v3/devices/NOPE",
                                         {"display_name": "x"})
    assert rename_missing.status == 404


async def test_other_users_devices_are_invisible(homeserver: RunningServer) -> None:
    await logged_in(homeserver, "alice", device="ALICEDEV")
    bob = await logged_in(homeserver, "bob")
    assert (await bob.get("/_matrix/client/v3/devices/ALICEDEV")).status == 404
    resp = await bob.post("/_matrix/client/v3/delete_devices", {
        "devices": ["ALICEDEV"], "auth": password_auth(None, user="bob")})
    assert resp.status == 200  # deletes nothing of alice's
    alice_devices = await homeserver.services.accounts._devices.list_devices("@alice:test.local")
    assert [d.device_id for d in alice_devices] == ["ALICEDEV"]


async def test_delete_device_needs_password(homeserver: RunningServer) -> None:
    phone = await logged_in(homeserver, device="PHONE")
    laptop = await logged_in(homeserver, device="LAPTOP")
    first = await phone.request("DELETE", "/_matrix/client/v3/devices/LAPTOP")
    assert first.status == 401 and first.json["flows"] == [{"stages": ["m.login.password"]}]
    session = first.json["session"]
    wrong = await phone.request("DELETE", "/_matrix/client/v3/devices/LAPTOP",
                                {"auth": password_auth(session, "bad")})
    assert wrong.status == 401 and wrong.json["errcode"] == "M_FORBIDDEN"
    ok = await phone.request("DELETE", "/_matrix/client/v3/devices/LAPTOP",
                             {"auth": password_auth(session)})
    assert ok.status == 200
    gone = await laptop.get("/_matrix/client/v3/account/whoami")
    assert gone.status == 401 and gone.json["errcode"] == "M_UNKNOWN_TOKEN"
    assert (await phone.get("/_matrix/client/v3/account/whoami")).status == 200


async def test_uia_session_cannot_be_reused_elsewhere(homeserver: RunningServer) -> None:
    alice = await logged_in(homeserver, "alice", device="A")
    bob = await logged_in(homeserver, "bob", device="B")
    session = (await alice.post("/_matrix/client/v3/delete_devices", {"devices": ["A"]})
               ).json["session"]
    stolen = await bob.post("/_matrix/client/v3/account/deactivate",
                            {"auth": password_auth(session, user="bob")})
    assert stolen.status == 403


async def test_change_password_logs_out_other_devices(homeserver: RunningServer) -> None:
    phone = await logged_in(homeserver, device="PHONE")
    laptop = await logged_in(homeserver, device="LAPTOP")
    resp = await phone.post("/_matrix/client/v3/account/password", {
        "new_password": "new", "auth": password_auth(None)})
    assert resp.status == 200, resp
    assert (await phone.get("/_matrix/client/v3/account/whoami")).status == 200
    assert (await laptop.get("/_matrix/client/v3/account/whoami")).status == 401
    assert (await phone.login("alice", "pw")).status == 403
    assert (await phone.login("alice", "new")).status == 200


async def test_change_password_keep_devices(homeserver: RunningServer) -> None:
    phone = await logged_in(homeserver, device="PHONE")
    laptop = await logged_in(homeserver, device="LAPTOP")
    resp = await phone.post("/_matrix/client/v3/account/password", {
        "new_password": "new", "logout_devices": False, "auth": password_auth(None)})
    assert resp.status == 200
    assert (await laptop.get("/_matrix/client/v3/account/whoami")).status == 200


async def test_deactivate(homeserver: RunningServer) -> None:
    phone = await logged_in(homeserver)
    first = await phone.post("/_matrix/client/v3/account/deactivate", {})
    assert first.status == 401
    done = await phone.post("/_matrix/client/v3/account/deactivate", {
        "auth": password_auth(first.json["session"])})
    assert done.status == 200 and done.json["id_server_unbind_result"] == "no-support"
    assert (await phone.get("/_matrix/client/v3/account/whoami")).status == 401
    assert (await phone.login("alice", "pw")).status == 403
    again = await homeserver.services.auth.is_localpart_available("alice")
    assert again is False  # the name stays reserved


async def test_logout_all(homeserver: RunningServer) -> None:
    a = await logged_in(homeserver, device="A")
    b = await logged_in(homeserver, device="B")
    assert (await a.post("/_matrix/client/v3/logout/all")).status == 200
    assert (await a.get("/_matrix/client/v3/account/whoami")).status == 401
    assert (await b.get("/_matrix/client/v3/account/whoami")).status == 401


async def test_capabilities(homeserver: RunningServer) -> None:
    client = await logged_in(homeserver)
    caps = (await client.get("/_matrix/client/v3/capabilities")).json["capabilities"]
    assert caps["m.change_password"] == {"enabled": True}
    assert caps["m.room_versions"]["default"] == "12"
    assert set(caps["m.room_versions"]["available"]) == {str(i) for i in range(1, 13)}
    anonymous = await homeserver.client.get("/_matrix/client/v3/capabilities", token="")
    assert anonymous.status == 401
