"""Two Myelins federating over TLS on loopback: a remote join through make_join/send_join,
then messages both ways in order."""

from __future__ import annotations

from room_helpers import create_room, join, send_text, timeline_texts, wait_for_text

from federation_fixtures import FederatingFactory
from harness import logged_in_user


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
