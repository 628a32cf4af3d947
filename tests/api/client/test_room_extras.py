"""forget, members?at=, timestamp_to_event."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from harness import RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"



async def test_forget(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    await bob.post(f"{V3}/join/{room_id}", {})
    still_in = await bob.post(f"{V3}/rooms/{room_id}/forget", {})
    assert still_in.status == 400
    await bob.post(f"{V3}/rooms/{room_id}/leave", {})
    assert (await bob.get(f"{V3}/rooms/{room_id}/messages?dir=b")).status == 200
    assert (await bob.post(f"{V3}/rooms/{room_id}/forget")).status == 200
    assert (await bob.get(f"{V3}/rooms/{room_id}/messages?dir=b")).status == 403
    initial = await bob.get(f"{V3}/sync?filter=" + quote('{"room":{"include_leave":true}}'))
    assert room_id not in initial.json["rooms"]["leave"]
    await bob.post(f"{V3}/join/{room_id}", {})  # coming back un-forgets
    assert (await bob.get(f"{V3}/rooms/{room_id}/messages?dir=b")).status == 200


async def test_members_at_a_point_in_time(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    before = (await alice.get(f"{V3}/sync")).json["next_batch"]
    await bob.post(f"{V3}/join/{room_id}", {})
    then = await alice.get(f"{V3}/rooms/{room_id}/members?at={before}")
    assert [m["state_key"] for m in then.json["chunk"]] == ["@alice:test.local"]
    now = await alice.get(f"{V3}/rooms/{room_id}/members")
    assert {m["state_key"] for m in now.json["chunk"]} == {"@alice:test.local",
                                                           "@bob:test.local"}
    bad = await alice.get(f"{V3}/rooms/{room_id}/members?at=nope")
    assert bad.status == 400


async def test_timestamp_to_event(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    first = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/1",
                                 {"body": "a"})).json["event_id"]
    await asyncio.sleep(0.02)
    ts_between = (await alice.get(f"{V3}/rooms/{room_id}/event/{first}")).json[
        "origin_server_ts"] + 10
    await asyncio.sleep(0.02)
    second = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/2",
                                  {"body": "b"})).json["event_id"]
    base = f"/_matrix/client/v1/rooms/{room_id}/timestamp_to_event"
    forwards = await alice.get(f"{base}?ts={ts_between}&dir=f")
    assert forwards.status == 200 and forwards.json["event_id"] == second
    backwards = await alice.get(f"{base}?ts={ts_between}&dir=b")
    assert backwards.json["event_id"] == first
    none = await alice.get(f"{base}?ts=99999999999999&dir=f")
    assert none.status == 404 and none.json["errcode"] == "M_NOT_FOUND"
    assert (await alice.get(f"{base}?dir=f")).status == 400
    assert (await alice.get(f"{base}?ts=1&dir=x")).status == 400
