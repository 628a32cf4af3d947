"""Presence over HTTP and through /sync."""

from __future__ import annotations

import asyncio
import time

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"


async def shared_room(alice: Client, bob: Client) -> str:
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    await bob.post(f"{V3}/join/{room_id}", {})
    return str(room_id)


def presence_of(sync_body: dict, user_id: str) -> dict | None:
    for event in sync_body["presence"]["events"]:
        if event["sender"] == user_id:
            return dict(event["content"])
    return None


async def test_presence_through_sync_and_status(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    carol = await user(homeserver, "carol")
    await shared_room(alice, bob)
    await bob.get(f"{V3}/sync")  # syncing makes bob online
    seen = presence_of((await alice.get(f"{V3}/sync")).json, "@bob:test.local")
    assert seen is not None and seen["presence"] == "online" and seen["currently_active"]
    token = (await alice.get(f"{V3}/sync")).json["next_batch"]

    poll = asyncio.create_task(alice.get(f"{V3}/sync?since={token}&timeout=5000"))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    assert (await bob.request("PUT", f"{V3}/presence/@bob:test.local/status",
                              {"presence": "unavailable", "status_msg": "lunch"})).status == 200
    update = (await poll).json
    assert time.monotonic() - started < 1
    assert presence_of(update, "@bob:test.local") == {
        "presence": "unavailable", "status_msg": "lunch",
        "last_active_ago": presence_of(update, "@bob:test.local")["last_active_ago"]}

    status = await alice.get(f"{V3}/presence/@bob:test.local/status")
    assert status.json["presence"] == "unavailable" and status.json["status_msg"] == "lunch"
    stranger = await carol.get(f"{V3}/presence/@bob:test.local/status")
    assert stranger.status == 403
    assert presence_of((await carol.get(f"{V3}/sync")).json, "@bob:test.local") is None


async def test_presence_errors_and_offline_sync(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    await shared_room(alice, bob)
    other = await alice.request("PUT", f"{V3}/presence/@bob:test.local/status",
                                {"presence": "online"})
    assert other.status == 403
    bad = await alice.request("PUT", f"{V3}/presence/@alice:test.local/status",
                              {"presence": "dancing"})
    assert bad.status == 400 and bad.json["errcode"] == "M_INVALID_PARAM"
    assert (await alice.get(f"{V3}/sync?set_presence=bogus")).status == 400
    await bob.get(f"{V3}/sync?set_presence=offline")  # a background sync: stays offline
    seen = presence_of((await alice.get(f"{V3}/sync")).json, "@bob:test.local")
    assert seen is None or seen["presence"] == "offline"
    assert (await alice.get(f"{V3}/presence/@nobody:elsewhere/status")).status == 404


async def test_silent_users_go_offline(start_server) -> None:
    server = await start_server(presence={"offline_after_s": 0.2})
    alice = await user(server, "alice")
    bob = await user(server, "bob")
    await shared_room(alice, bob)
    await bob.get(f"{V3}/sync")
    await asyncio.sleep(0.3)
    await server.services.presence.sweep()
    seen = presence_of((await alice.get(f"{V3}/sync")).json, "@bob:test.local")
    assert seen is not None and seen["presence"] == "offline"


async def test_presence_can_be_disabled(start_server) -> None:
    server = await start_server(presence={"enabled": False})
    alice = await user(server, "alice")
    bob = await user(server, "bob")
    await shared_room(alice, bob)
    await bob.get(f"{V3}/sync")
    assert (await bob.request("PUT", f"{V3}/presence/@bob:test.local/status",
                              {"presence": "online"})).status == 200
    assert (await alice.get(f"{V3}/sync")).json["presence"]["events"] == []
