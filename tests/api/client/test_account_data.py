"""Account data over HTTP and through /sync."""

from __future__ import annotations

import json
from urllib.parse import quote

from harness import RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"



async def test_global_and_room_account_data(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    base = f"{V3}/user/@alice:test.local"
    assert (await alice.request("PUT", f"{base}/account_data/org.example.settings",
                                {"theme": "dark"})).status == 200
    assert (await alice.request("PUT", f"{base}/rooms/{room_id}/account_data/org.example.pin",
                                {"pinned": True})).status == 200
    assert (await alice.get(f"{base}/account_data/org.example.settings")).json == \
        {"theme": "dark"}
    assert (await alice.get(f"{base}/rooms/{room_id}/account_data/org.example.pin")).json == \
        {"pinned": True}
    initial = (await alice.get(f"{V3}/sync")).json
    assert {"type": "org.example.settings", "content": {"theme": "dark"}} in \
        initial["account_data"]["events"]
    assert initial["rooms"]["join"][room_id]["account_data"]["events"] == [
        {"type": "org.example.pin", "content": {"pinned": True}}]

    token = initial["next_batch"]
    await alice.request("PUT", f"{base}/account_data/org.example.settings", {"theme": "light"})
    update = (await alice.get(f"{V3}/sync?since={token}")).json
    assert update["account_data"]["events"] == [
        {"type": "org.example.settings", "content": {"theme": "light"}}]
    assert update["rooms"]["join"] == {}
    token = update["next_batch"]
    await alice.request("PUT", f"{base}/rooms/{room_id}/account_data/org.example.pin",
                        {"pinned": False})
    update = (await alice.get(f"{V3}/sync?since={token}")).json
    room = update["rooms"]["join"][room_id]
    assert room["account_data"]["events"] == [
        {"type": "org.example.pin", "content": {"pinned": False}}]
    assert room["timeline"]["events"] == []
    filtered = (await alice.get(f"{V3}/sync?filter=" + quote(json.dumps(
        {"account_data": {"not_types": ["org.example.*"]}})))).json
    assert [e for e in filtered["account_data"]["events"]
            if e["type"].startswith("org.example.")] == []


async def test_account_data_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    await user(homeserver, "bob")
    base = f"{V3}/user/@alice:test.local"
    missing = await alice.get(f"{base}/account_data/nothing")
    assert missing.status == 404 and missing.json["errcode"] == "M_NOT_FOUND"
    other = await alice.request("PUT", f"{V3}/user/@bob:test.local/account_data/x", {})
    assert other.status == 403
    managed = await alice.request("PUT", f"{base}/account_data/m.fully_read", {"event_id": "$x"})
    assert managed.status == 405 and managed.json["errcode"] == "M_BAD_JSON"
    not_object = await alice.request("PUT", f"{base}/account_data/x", [1])
    assert not_object.status == 400 and not_object.json["errcode"] == "M_BAD_JSON"
    bad_room = await alice.request("PUT", f"{base}/rooms/nope/account_data/x", {})
    assert bad_room.status == 400
