"""Rooms shared with a real Synapse, in both directions: joins by room ID and alias, messages
both ways in order, invites, leaving and rejoining."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from room_helpers import create_room, join, send_text, timeline_texts, wait_for, wait_for_text

from federation_fixtures import FederatingFactory, synapse_user
from harness import logged_in_user
from synapse_harness import SynapseServer

pytestmark = pytest.mark.federation


async def test_myelin_user_joins_a_synapse_room(
        federating_server: FederatingFactory, synapse: SynapseServer) -> None:
    myelin = await federating_server()
    sue = await synapse_user(synapse, "sue1")
    alice = await logged_in_user(myelin, "alice")
    room_id = await create_room(sue, name="Synapse room")
    await send_text(sue, room_id, "from synapse, before")

    joined = await join(alice, room_id, via=[synapse.server_name])
    assert joined.status == 200, joined

    await send_text(sue, room_id, "hello myelin")
    await wait_for_text(alice, room_id, "hello myelin")
    await send_text(alice, room_id, "hello synapse")
    await wait_for_text(sue, room_id, "hello synapse")
    for i in range(5):
        await send_text(alice, room_id, f"m{i}")
    await wait_for_text(sue, room_id, "m4")
    assert (await timeline_texts(sue, room_id))[-5:] == [f"m{i}" for i in range(5)]


async def test_synapse_user_joins_a_myelin_room(
        federating_server: FederatingFactory, synapse: SynapseServer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await synapse_user(synapse, "sue2")
    room_id = await create_room(alice, name="Myelin room", room_alias_name="lobby")
    await send_text(alice, room_id, "before sue")

    alias = f"#lobby:{myelin.server_name}"
    joined = await join(sue, alias)
    assert joined.status == 200, (joined, synapse.log_tail())
    assert joined.json["room_id"] == room_id

    await send_text(alice, room_id, "welcome sue")
    await wait_for_text(sue, room_id, "welcome sue")
    await send_text(sue, room_id, "thanks alice")
    await wait_for_text(alice, room_id, "thanks alice")

    async def sue_is_member() -> bool:
        response = await alice.get(f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members")
        return f"@sue2:{synapse.server_name}" in response.json.get("joined", {})
    await wait_for(sue_is_member)
