"""/sync over HTTP: initial, incremental, long-poll, invites, leaves, filters, visibility."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"



async def sync(client: Client, **params: Any) -> dict[str, Any]:
    query = "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
    resp = await client.get(f"{V3}/sync?{query}")
    assert resp.status == 200, resp
    return dict(resp.json)


async def send(client: Client, room_id: str, body: str, txn: str) -> str:
    resp = await client.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                                {"msgtype": "m.text", "body": body})
    assert resp.status == 200, resp
    return str(resp.json["event_id"])


async def test_initial_then_incremental(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = (await alice.post(f"{V3}/createRoom", {"name": "R"})).json["room_id"]
    first = await send(alice, room_id, "one", "1")
    initial = await sync(alice)
    room = initial["rooms"]["join"][room_id]
    timeline = room["timeline"]["events"]
    assert timeline[-1]["event_id"] == first and "room_id" not in timeline[-1]
    state_types = {e["type"] for e in room["state"]["events"]}
    timeline_types = {e["type"] for e in timeline}
    assert "m.room.create" in state_types | timeline_types
    assert room["timeline"]["limited"] is False  # 8 events: all fit in the default 10
    assert timeline[0]["type"] == "m.room.create" and room["state"]["events"] == []
    assert room["timeline"]["prev_batch"].startswith("t")
    for key in ("account_data", "presence", "to_device", "device_lists",
                "device_one_time_keys_count"):
        assert key in initial

    second = await send(alice, room_id, "two", "2")
    incremental = await sync(alice, since=initial["next_batch"])
    room = incremental["rooms"]["join"][room_id]
    assert [e["event_id"] for e in room["timeline"]["events"]] == [second]
    assert room["timeline"]["limited"] is False and room["state"]["events"] == []
    nothing = await sync(alice, since=incremental["next_batch"])
    assert nothing["rooms"]["join"] == {}
    assert nothing["next_batch"] == incremental["next_batch"]


async def test_long_poll_wakes_within_milliseconds(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    token = (await sync(alice))["next_batch"]
    poll = asyncio.create_task(sync(alice, since=token, timeout=10000))
    await asyncio.sleep(0.2)
    assert not poll.done()
    sent_at = time.monotonic()
    event_id = await send(alice, room_id, "wake up", "w")
    result = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - sent_at < 0.5
    events = result["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["event_id"] for e in events] == [event_id]


async def test_timeout_returns_empty(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    await alice.post(f"{V3}/createRoom", {})
    token = (await sync(alice))["next_batch"]
    started = time.monotonic()
    result = await sync(alice, since=token, timeout=300)
    assert 0.25 < time.monotonic() - started < 3
    assert result["rooms"]["join"] == {} and result["next_batch"] == token


async def test_invite_join_leave_sections(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"name": "Secret"})).json["room_id"]
    token = (await sync(bob))["next_batch"]
    await alice.post(f"{V3}/rooms/{room_id}/invite", {"user_id": "@bob:test.local"})
    invited = await sync(bob, since=token)
    invite_state = invited["rooms"]["invite"][room_id]["invite_state"]["events"]
    kinds = {(e["type"], e["state_key"]) for e in invite_state}
    assert ("m.room.name", "") in kinds and ("m.room.member", "@bob:test.local") in kinds
    assert all(set(e) == {"type", "state_key", "content", "sender"} for e in invite_state)
    await bob.post(f"{V3}/rooms/{room_id}/join", {})
    joined = await sync(bob, since=invited["next_batch"])
    room = joined["rooms"]["join"][room_id]
    everything = room["state"]["events"] + room["timeline"]["events"]
    assert ("m.room.create", "") in {(e["type"], e.get("state_key")) for e in everything}
    await alice.post(f"{V3}/rooms/{room_id}/kick", {"user_id": "@bob:test.local"})
    kicked = await sync(bob, since=joined["next_batch"])
    left = kicked["rooms"]["leave"][room_id]["timeline"]["events"]
    assert left[-1]["type"] == "m.room.member" and left[-1]["content"]["membership"] == "leave"
    await send(alice, room_id, "after bob left", "x")
    later = await sync(bob, since=kicked["next_batch"])
    assert room_id not in later["rooms"]["join"] and room_id not in later["rooms"]["leave"]


async def test_filters_limit_and_types(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    for i in range(4):
        await send(alice, room_id, f"m{i}", f"f{i}")
    inline = json.dumps({"room": {"timeline": {"limit": 2}}})
    result = await sync(alice, filter=inline)
    timeline = result["rooms"]["join"][room_id]["timeline"]
    assert [e["content"]["body"] for e in timeline["events"]] == ["m2", "m3"]
    assert timeline["limited"] is True
    state = {(e["type"], e["state_key"]) for e in result["rooms"]["join"][room_id]["state"]
             ["events"]}
    assert {("m.room.create", ""), ("m.room.member", "@alice:test.local"),
            ("m.room.power_levels", "")} <= state
    fid = (await alice.post(f"{V3}/user/@alice:test.local/filter",
                            {"room": {"timeline": {"types": ["m.room.member"]},
                                      "state": {"types": ["m.room.create"]}},
                             "event_fields": ["type", "content.membership"]})).json["filter_id"]
    result = await sync(alice, filter=fid)
    room = result["rooms"]["join"][room_id]
    assert all(e["type"] == "m.room.member" for e in room["timeline"]["events"])
    assert all(set(e) <= {"type", "content"} for e in room["timeline"]["events"])
    excluded = await sync(alice, filter=json.dumps({"room": {"not_rooms": [room_id]}}))
    assert excluded["rooms"]["join"] == {}


async def test_sync_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bad = await alice.get(f"{V3}/sync?since=garbage")
    assert bad.status == 400 and bad.json["errcode"] == "M_INVALID_PARAM"
    bad_filter = await alice.get(f"{V3}/sync?filter=%7Bnot")
    assert bad_filter.status == 400 and bad_filter.json["errcode"] == "M_NOT_JSON"
    unknown_filter = await alice.get(f"{V3}/sync?filter=12345")
    assert unknown_filter.status == 404
    timeout = await alice.get(f"{V3}/sync?timeout=soon")
    assert timeout.status == 400
    anonymous = await homeserver.client.get(f"{V3}/sync", token="")
    assert anonymous.status == 401


async def test_history_visibility_joined(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {
        "preset": "public_chat",
        "initial_state": [{"type": "m.room.history_visibility",
                           "content": {"history_visibility": "joined"}}]})).json["room_id"]
    secret = await send(alice, room_id, "before bob", "s")
    await bob.post(f"{V3}/join/{room_id}", {})
    visible = await send(alice, room_id, "after bob", "v")
    room = (await sync(bob))["rooms"]["join"][room_id]
    ids = [e["event_id"] for e in room["timeline"]["events"]]
    assert visible in ids and secret not in ids


async def test_lazy_loading_members(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    others = [await user(homeserver, f"u{i}") for i in range(4)]
    for other in others:
        await other.post(f"{V3}/join/{room_id}", {})
    for i in range(12):
        await send(others[0], room_id, f"from u0 {i}", f"l{i}")
    lazy = json.dumps({"room": {"state": {"lazy_load_members": True},
                                "timeline": {"limit": 5}}})
    room = (await sync(alice, filter=lazy))["rooms"]["join"][room_id]
    members = {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {"@u0:test.local", "@alice:test.local"}
    eager = (await sync(alice, filter=json.dumps({"room": {"timeline": {"limit": 5}}})))
    members = {e["state_key"] for e in eager["rooms"]["join"][room_id]["state"]["events"]
               if e["type"] == "m.room.member"}
    assert len(members) == 5
