"""Two Myelins sending into one room at the same moment: each receives events whose prev
events do not include its own latest one, so the room's DAG forks and must merge again."""

from __future__ import annotations

import asyncio

from federation_fixtures import FederatingFactory
from harness import logged_in_user
from room_helpers import create_room, join, send_text, timeline_texts, wait_for_text


async def test_concurrent_senders_on_two_servers_converge(
        federating_server: FederatingFactory) -> None:
    one = await federating_server()
    two = await federating_server()
    alice = await logged_in_user(one, "alice")
    bob = await logged_in_user(two, "bob")
    room_id = await create_room(alice, name="Forks")
    assert (await join(bob, room_id, via=[one.server_name])).status == 200
    await send_text(alice, room_id, "ready")
    await wait_for_text(bob, room_id, "ready")

    async def talk(user, prefix: str) -> None:  # type: ignore[no-untyped-def]
        for i in range(15):
            await send_text(user, room_id, f"{prefix}{i}")

    await asyncio.gather(talk(alice, "a"), talk(bob, "b"))
    # Every event reaches the other side although most arrive on a fork.
    await wait_for_text(alice, room_id, "b14")
    await wait_for_text(bob, room_id, "a14")
    # After the merge, one more event from each side reaches the other too.
    await send_text(alice, room_id, "after a")
    await send_text(bob, room_id, "after b")
    await wait_for_text(alice, room_id, "after b")
    await wait_for_text(bob, room_id, "after a")
    expected = {f"{p}{i}" for p in "ab" for i in range(15)}
    for user in (alice, bob):
        texts = await timeline_texts(user, room_id, limit=100)
        assert expected <= set(texts)
