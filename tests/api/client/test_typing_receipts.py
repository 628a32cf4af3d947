"""Typing, receipts and read markers, delivered through /sync."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"


async def shared_room(alice: Client, bob: Client) -> str:
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    assert (await bob.post(f"{V3}/join/{room_id}", {})).status == 200
    return str(room_id)


def ephemeral(sync_body: dict, room_id: str) -> list[dict]:
    room = sync_body["rooms"]["join"].get(room_id)
    return list(room["ephemeral"]["events"]) if room else []


async def test_typing_wakes_sync_and_expires(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await shared_room(alice, bob)
    token = (await bob.get(f"{V3}/sync")).json["next_batch"]
    poll = asyncio.create_task(bob.get(f"{V3}/sync?since={token}&timeout=5000"))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    assert (await alice.request("PUT", f"{V3}/rooms/{room_id}/typing/@alice:test.local",
                                {"typing": True, "timeout": 300})).status == 200
    result = (await poll).json
    assert time.monotonic() - started < 1
    assert ephemeral(result, room_id) == [{"type": "m.typing",
                                          "content": {"user_ids": ["@alice:test.local"]}}]
    # The typing notification times out by itself and the sync hears about it.
    later = (await bob.get(f"{V3}/sync?since={result['next_batch']}&timeout=3000")).json
    assert ephemeral(later, room_id) == [{"type": "m.typing", "content": {"user_ids": []}}]


async def test_typing_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    other = await alice.request("PUT", f"{V3}/rooms/{room_id}/typing/@bob:test.local",
                                {"typing": True})
    assert other.status == 403
    outsider = await bob.request("PUT", f"{V3}/rooms/{room_id}/typing/@bob:test.local",
                                 {"typing": True})
    assert outsider.status == 403
    shape = await alice.request("PUT", f"{V3}/rooms/{room_id}/typing/@alice:test.local",
                                {"typing": "yes"})
    assert shape.status == 400


async def test_receipts_and_read_markers(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await shared_room(alice, bob)
    event_id = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/1",
                                    {"body": "read me"})).json["event_id"]
    token = (await alice.get(f"{V3}/sync")).json["next_batch"]
    assert (await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read/{event_id}", {})).status == 200
    assert (await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read.private/{event_id}",
                           {})).status == 200
    seen = (await alice.get(f"{V3}/sync?since={token}")).json
    receipts = [e for e in ephemeral(seen, room_id) if e["type"] == "m.receipt"]
    assert len(receipts) == 1
    content = receipts[0]["content"][event_id]
    assert set(content) == {"m.read"}  # others never see private receipts
    assert "@bob:test.local" in content["m.read"]
    own = (await bob.get(f"{V3}/sync")).json
    mine = next(e for e in ephemeral(own, room_id) if e["type"] == "m.receipt")["content"]
    assert set(mine[event_id]) == {"m.read", "m.read.private"}

    markers = await bob.post(f"{V3}/rooms/{room_id}/read_markers",
                             {"m.fully_read": event_id, "m.read": event_id})
    assert markers.status == 200
    fully = await bob.get(f"{V3}/user/@bob:test.local/rooms/{room_id}/account_data/m.fully_read")
    assert fully.json == {"event_id": event_id}
    threaded = await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read/{event_id}",
                              {"thread_id": "main"})
    assert threaded.status == 200


async def test_receipt_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    event_id = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/1",
                                    {"body": "x"})).json["event_id"]
    assert (await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read/{event_id}", {})).status == 403
    unknown_type = await alice.post(f"{V3}/rooms/{room_id}/receipt/m.seen/{event_id}", {})
    assert unknown_type.status == 400
    unknown_event = await alice.post(f"{V3}/rooms/{room_id}/receipt/m.read/$nope", {})
    assert unknown_event.status == 404
    bad_thread = await alice.post(f"{V3}/rooms/{room_id}/receipt/m.fully_read/{event_id}",
                                  {"thread_id": "main"})
    assert bad_thread.status == 400


async def notified(client: Client, count: int) -> None:
    """Wait until push evaluation recorded ``count`` notifications for ``client``: unread
    counts then come from those records rather than from evaluating the events again."""
    deadline = time.monotonic() + 10
    while len((await client.get(f"{V3}/notifications")).json["notifications"]) < count:
        assert time.monotonic() < deadline, "push evaluation did not catch up"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("evaluated", [False, True], ids=["fresh", "evaluated"])
async def test_unread_notification_counts(homeserver: RunningServer, evaluated: bool) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await shared_room(alice, bob)
    await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/1",
                        {"msgtype": "m.text", "body": "hello"})
    await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/2",
                        {"msgtype": "m.text", "body": "hey bob",
                         "m.mentions": {"user_ids": ["@bob:test.local"]}})
    last = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/3",
                                {"msgtype": "m.notice", "body": "a notice"})).json["event_id"]
    if evaluated:
        await notified(bob, 2)
    counts = (await bob.get(f"{V3}/sync")).json["rooms"]["join"][room_id][
        "unread_notifications"]
    # Two messages notify (notices are suppressed); the mention also highlights.
    assert counts == {"notification_count": 2, "highlight_count": 1}
    mine = (await alice.get(f"{V3}/sync")).json["rooms"]["join"][room_id][
        "unread_notifications"]
    assert mine == {"notification_count": 0, "highlight_count": 0}  # own messages never count
    await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read/{last}", {})
    counts = (await bob.get(f"{V3}/sync")).json["rooms"]["join"][room_id][
        "unread_notifications"]
    assert counts == {"notification_count": 0, "highlight_count": 0}


@pytest.mark.parametrize("evaluated", [False, True], ids=["fresh", "evaluated"])
async def test_unread_thread_notifications(homeserver: RunningServer, evaluated: bool) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await shared_room(alice, bob)
    root = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/r",
                                {"msgtype": "m.text", "body": "root"})).json["event_id"]
    for i in range(2):
        await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/t{i}", {
            "msgtype": "m.text", "body": f"in thread {i}",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    if evaluated:
        await notified(bob, 3)
    threaded_filter = '{"room":{"timeline":{"unread_thread_notifications":true}}}'
    body = (await bob.get(f"{V3}/sync?filter={threaded_filter}")).json["rooms"]["join"][room_id]
    assert body["unread_notifications"] == {"notification_count": 1, "highlight_count": 0}
    assert body["unread_thread_notifications"] == {
        root: {"notification_count": 2, "highlight_count": 0}}
    plain = (await bob.get(f"{V3}/sync")).json["rooms"]["join"][room_id]
    assert plain["unread_notifications"]["notification_count"] == 3
    assert "unread_thread_notifications" not in plain
    last = (await bob.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=1")).json["chunk"][0]
    await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read/{last['event_id']}",
                   {"thread_id": root})
    body = (await bob.get(f"{V3}/sync?filter={threaded_filter}")).json["rooms"]["join"][room_id]
    assert body["unread_thread_notifications"] == {}
    assert body["unread_notifications"]["notification_count"] == 1  # the root is still unread


async def test_unread_counts_keep_what_the_rules_said_when_the_event_came(
        homeserver: RunningServer) -> None:
    # As with Synapse's push actions: an event is judged once, when it arrives; changing the
    # rules later changes how later events count, not the count of those already unread.
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await shared_room(alice, bob)
    await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/1",
                        {"msgtype": "m.text", "body": "before"})
    await notified(bob, 1)
    off = await bob.request("PUT", f"{V3}/pushrules/global/override/.m.rule.master/enabled",
                            {"enabled": True})
    assert off.status == 200
    await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/2",
                        {"msgtype": "m.text", "body": "after"})
    counts = (await bob.get(f"{V3}/sync")).json["rooms"]["join"][room_id][
        "unread_notifications"]
    assert counts == {"notification_count": 1, "highlight_count": 0}


async def _unread(client: Client, room_id: str) -> dict[str, int]:
    body = (await client.get(f"{V3}/sync")).json
    return body["rooms"]["join"][room_id]["unread_notifications"]


@pytest.mark.parametrize("evaluated", [False, True], ids=["fresh", "evaluated"])
async def test_unread_counts_grow_with_each_sync_and_restart_at_the_receipt(
        homeserver: RunningServer, evaluated: bool) -> None:
    # Between receipts, each sync adds what came since the last one to the kept tally.
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await shared_room(alice, bob)
    highlights, last = 0, ""
    for i in range(4):
        content: dict = {"msgtype": "m.text", "body": f"m{i}"}
        if i == 2:
            content["m.mentions"] = {"user_ids": ["@bob:test.local"]}
            highlights += 1
        last = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{i}",
                                    content)).json["event_id"]
        expected = i + 1
        if evaluated:
            await notified(bob, expected)
        assert await _unread(bob, room_id) == {"notification_count": expected,
                                               "highlight_count": highlights}
        assert await _unread(bob, room_id) == {"notification_count": expected,
                                               "highlight_count": highlights}
    await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read/{last}", {})
    assert await _unread(bob, room_id) == {"notification_count": 0, "highlight_count": 0}
    await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/after",
                        {"msgtype": "m.text", "body": "after"})
    assert await _unread(bob, room_id) == {"notification_count": 1, "highlight_count": 0}


async def test_unread_counts_stop_at_the_cap_when_added_up(
        homeserver: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from myelin.services import unread

    monkeypatch.setattr(unread, "MAX_COUNTED", 3)
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await shared_room(alice, bob)
    for i in range(2):
        await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{i}",
                            {"msgtype": "m.text", "body": f"m{i}"})
    assert (await _unread(bob, room_id))["notification_count"] == 2
    for i in range(2, 5):
        await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{i}",
                            {"msgtype": "m.text", "body": f"m{i}",
                             "m.mentions": {"user_ids": ["@bob:test.local"]}})
    # Only the newest three count: all of them mentions.
    assert await _unread(bob, room_id) == {"notification_count": 3, "highlight_count": 3}
