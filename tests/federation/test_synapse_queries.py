"""Profile and room-alias queries between Myelin and Synapse, both ways."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from federation_fixtures import FederatingFactory, Peer
from harness import Client, logged_in_user
from room_helpers import create_room, join

pytestmark = pytest.mark.federation


async def test_profiles_and_aliases_both_ways(
        federating_server: FederatingFactory, peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue6")
    sue_id = f"@sue6:{peer.server_name}"
    await sue.request("PUT", f"/_matrix/client/v3/profile/{quote(sue_id)}/displayname",
                      {"displayname": "Sue of Synapse"})
    await alice.request("PUT", f"/_matrix/client/v3/profile/{myelin.user_id('alice')}/"
                        "displayname", {"displayname": "Alice of Myelin"})
    # Myelin asks Synapse.
    profile = await alice.get(f"/_matrix/client/v3/profile/{quote(sue_id)}")
    assert profile.status == 200, profile
    assert profile.json["displayname"] == "Sue of Synapse"
    field = await alice.get(f"/_matrix/client/v3/profile/{quote(sue_id)}/displayname")
    assert field.json == {"displayname": "Sue of Synapse"}
    nobody = quote(f"@nobody:{peer.server_name}")
    missing = await alice.get(f"/_matrix/client/v3/profile/{nobody}")
    assert missing.status == 404
    synapse_room = await create_room(sue, room_alias_name="sue-room")
    resolved = await alice.get("/_matrix/client/v3/directory/room/"
                               + quote(f"#sue-room:{peer.server_name}"))
    assert resolved.status == 200, resolved
    assert resolved.json["room_id"] == synapse_room
    assert peer.server_name in resolved.json["servers"]
    # Synapse asks Myelin.
    profile = await sue.get(f"/_matrix/client/v3/profile/{quote(myelin.user_id('alice'))}")
    assert profile.status == 200, profile
    assert profile.json["displayname"] == "Alice of Myelin"
    myelin_room = await create_room(alice, room_alias_name="alice-room")
    resolved = await sue.get("/_matrix/client/v3/directory/room/"
                             + quote(f"#alice-room:{myelin.server_name}"))
    assert resolved.status == 200, resolved
    assert resolved.json["room_id"] == myelin_room
    unknown = await sue.get("/_matrix/client/v3/directory/room/"
                            + quote(f"#nope:{myelin.server_name}"))
    assert unknown.status == 404


async def test_public_room_directories_both_ways(
        federating_server: FederatingFactory, peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue7")
    theirs = await create_room(sue, visibility="public", name="Synapse lounge")
    ours = await create_room(alice, visibility="public", name="Myelin lounge")
    listed = await alice.get(f"/_matrix/client/v3/publicRooms?server={peer.server_name}")
    assert listed.status == 200, listed
    assert theirs in [r["room_id"] for r in listed.json["chunk"]]
    searched = await alice.post(f"/_matrix/client/v3/publicRooms?server={peer.server_name}",
                                {"filter": {"generic_search_term": "lounge"}})
    assert searched.status == 200, searched
    assert [r["name"] for r in searched.json["chunk"]] == ["Synapse lounge"]
    listed = await sue.get(f"/_matrix/client/v3/publicRooms?server={myelin.server_name}")
    assert listed.status == 200, listed
    assert [r["room_id"] for r in listed.json["chunk"]] == [ours]
    searched = await sue.post(f"/_matrix/client/v3/publicRooms?server={myelin.server_name}",
                              {"filter": {"generic_search_term": "Myelin"}})
    assert searched.status == 200, searched
    assert [r["name"] for r in searched.json["chunk"]] == ["Myelin lounge"]


async def make_space(client: Client, server_name: str,
                     child_names: list[str]) -> tuple[str, list[str]]:
    children = [await create_room(client, name=name) for name in child_names]
    space = await create_room(client, name="Space", creation_content={"type": "m.space"})
    for child in children:
        response = await client.request(
            "PUT", f"/_matrix/client/v3/rooms/{quote(space)}/state/m.space.child/"
            f"{quote(child)}", {"via": [server_name]})
        assert response.status == 200, response
    return space, children


async def test_space_hierarchy_both_ways(
        federating_server: FederatingFactory, peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue9")
    # A Synapse space: Myelin knows only the space (alice joins it), not its children.
    space, children = await make_space(sue, peer.server_name, ["S one", "S two"])
    assert (await join(alice, space, via=[peer.server_name])).status == 200
    tree = await alice.get(f"/_matrix/client/v1/rooms/{quote(space)}/hierarchy")
    assert tree.status == 200, tree
    rooms = [r["room_id"] for r in tree.json["rooms"]]
    assert rooms[0] == space and sorted(rooms[1:]) == sorted(children)
    assert {r.get("name") for r in tree.json["rooms"]} == {"Space", "S one", "S two"}
    # A Myelin space, walked by Synapse.
    space, children = await make_space(alice, myelin.server_name, ["M one", "M two"])
    assert (await join(sue, space, via=[myelin.server_name])).status == 200
    tree = await sue.get(f"/_matrix/client/v1/rooms/{quote(space)}/hierarchy")
    assert tree.status == 200, tree
    assert sorted(r["room_id"] for r in tree.json["rooms"]) == sorted([space, *children])
