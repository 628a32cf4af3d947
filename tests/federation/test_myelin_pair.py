"""Two Myelins federating over TLS on loopback: a remote join through make_join/send_join,
then messages both ways in order."""

from __future__ import annotations

from federation_fixtures import FederatingFactory
from harness import logged_in_user
from room_helpers import create_room, join, send_text, timeline_texts, wait_for_text


async def test_join_and_talk_both_ways(federating_server: FederatingFactory) -> None:
    one = await federating_server()
    two = await federating_server()
    alice = await logged_in_user(one, "alice")
    bob = await logged_in_user(two, "bob")
    room_id = await create_room(alice, name="Across servers")
    await send_text(alice, room_id, "before bob")

    joined = await join(bob, room_id, via=[one.server_name])
    assert joined.status == 200, joined
    assert joined.json["room_id"] == room_id

    await send_text(alice, room_id, "hello bob")
    await wait_for_text(bob, room_id, "hello bob")
    await send_text(bob, room_id, "hello alice")
    await wait_for_text(alice, room_id, "hello alice")
    for i in range(5):
        await send_text(alice, room_id, f"a{i}")
    await wait_for_text(bob, room_id, "a4")
    texts = await timeline_texts(bob, room_id)
    assert texts[-5:] == [f"a{i}" for i in range(5)]
    members = await alice.get(f"/_matrix/client/v3/rooms/{room_id}/joined_members")
    assert two.user_id("bob") in members.json["joined"]


async def test_late_joiner_backfills_history_in_order(
        federating_server: FederatingFactory) -> None:
    one = await federating_server()
    two = await federating_server()
    alice = await logged_in_user(one, "alice")
    bob = await logged_in_user(two, "bob")
    room_id = await create_room(alice, name="History")
    sent = [f"old {i}" for i in range(250)]
    for text in sent:
        await send_text(alice, room_id, text)
    assert (await join(bob, room_id, via=[one.server_name])).status == 200

    texts: list[str] = []
    token = None
    for _ in range(40):
        query = "dir=b&limit=50" + (f"&from={token}" if token else "")
        page = await bob.get(f"/_matrix/client/v3/rooms/{room_id}/messages?{query}")
        assert page.status == 200, page
        texts += [e["content"]["body"] for e in page.json["chunk"]
                  if e["type"] == "m.room.message"]
        token = page.json.get("end")
        if token is None:
            break
    assert list(reversed(texts)) == sent  # every old message, in order, no gaps
    # History stays history: bob's /sync does not replay it as new messages.
    sync = await bob.get("/_matrix/client/v3/sync?timeout=0")
    timeline = sync.json["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e for e in timeline if e["type"] == "m.room.message"] == []


async def test_restricted_join_through_an_authorising_server(
        federating_server: FederatingFactory) -> None:
    one = await federating_server()
    two = await federating_server()
    alice = await logged_in_user(one, "alice")
    bob = await logged_in_user(two, "bob")
    carol = await logged_in_user(two, "carol")
    lobby = await create_room(alice, name="Lobby")
    restricted = await create_room(alice, preset="private_chat", initial_state=[{
        "type": "m.room.join_rules", "state_key": "",
        "content": {"join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": lobby}]}}])
    assert (await join(bob, lobby, via=[one.server_name])).status == 200
    joined = await join(bob, restricted, via=[one.server_name])
    assert joined.status == 200, joined
    member = await alice.get(f"/_matrix/client/v3/rooms/{restricted}/state/m.room.member/"
                             f"{two.user_id('bob')}")
    assert member.json["membership"] == "join"
    assert member.json["join_authorised_via_users_server"] == one.user_id("alice")
    refused = await join(carol, restricted, via=[one.server_name])
    assert refused.status in (403, 404), refused


async def test_a_dead_server_does_not_block_local_users(
        federating_server: FederatingFactory) -> None:
    import time

    one = await federating_server()
    two = await federating_server()
    alice = await logged_in_user(one, "alice")
    bob = await logged_in_user(two, "bob")
    room_id = await create_room(alice)
    assert (await join(bob, room_id, via=[one.server_name])).status == 200
    gone = two.server_name
    await two.server.stop()  # server two goes away without leaving the room
    started = time.monotonic()
    for i in range(5):
        await send_text(alice, room_id, f"still here {i}")
    assert time.monotonic() - started < 2.0  # sends never wait for the dead server
    assert (await timeline_texts(alice, room_id))[-1] == "still here 4"
    assert one.services.federation_sender.queued(gone) >= 5  # kept for when it returns
