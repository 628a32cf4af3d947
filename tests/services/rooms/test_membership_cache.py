"""The membership lists kept in memory follow joins, leaves and forgets made through the
client API."""

from __future__ import annotations

from myelin.services.rooms.membership_cache import JoinedMembers, UserMemberships
from myelin.storage.stores.state import StateStore

from harness import RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"


def members_of(server: RunningServer, max_rooms: int = 100,
               server_name: str = "test.local") -> JoinedMembers:
    timeline = server.services.timeline
    return JoinedMembers(StateStore(server.services.db), timeline.stream,
                         timeline.membership_changes, server_name, max_rooms=max_rooms)


async def test_local_members_follow_joins_and_leave_out_other_servers(
        homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    members = members_of(homeserver)
    assert await members.local(room_id) == ("@alice:test.local",)
    assert (await bob.post(f"{V3}/join/{room_id}", {})).status == 200
    assert sorted(await members.local(room_id)) == ["@alice:test.local", "@bob:test.local"]
    # Seen from another server, the same members are all remote.
    assert await members_of(homeserver, server_name="elsewhere.example").local(room_id) == ()


async def test_follows_joins_and_leaves(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    members = members_of(homeserver)
    assert await members.get(room_id) == ("@alice:test.local",)
    assert await members.get(room_id) == ("@alice:test.local",)  # from memory
    assert (await bob.post(f"{V3}/join/{room_id}", {})).status == 200
    assert sorted(await members.get(room_id)) == ["@alice:test.local", "@bob:test.local"]
    assert (await bob.post(f"{V3}/rooms/{room_id}/leave", {})).status == 200
    assert await members.get(room_id) == ("@alice:test.local",)


async def test_a_change_in_another_room_keeps_the_list(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    first = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    second = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    members = members_of(homeserver)
    await members.get(first)
    assert (await bob.post(f"{V3}/join/{second}", {})).status == 200
    queries = 0
    state = members._state  # count what reaches the database
    original = state.joined_members

    async def counting(room_id: str) -> list[str]:
        nonlocal queries
        queries += 1
        return await original(room_id)

    state.joined_members = counting  # type: ignore[method-assign]
    assert await members.get(first) == ("@alice:test.local",)
    assert queries == 0
    assert len(await members.get(second)) == 2
    assert queries == 1


async def test_least_recently_used_rooms_are_dropped(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    rooms = [(await alice.post(f"{V3}/createRoom", {})).json["room_id"] for _ in range(3)]
    members = members_of(homeserver, max_rooms=2)
    for room_id in rooms:
        assert await members.get(room_id) == ("@alice:test.local",)
    assert list(members._rooms.values) == rooms[1:]


async def test_user_memberships_follow_joins_leaves_and_forgets(
        homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    # The server's own cache: the forget below must reach it through the membership service.
    memberships: UserMemberships = homeserver.services.sync._memberships

    async def rooms_of_bob() -> list[tuple[str, str]]:
        return [(r, m) for r, m, _, _ in await memberships.get("@bob:test.local")]

    assert await rooms_of_bob() == []
    assert (await bob.post(f"{V3}/join/{room_id}", {})).status == 200
    assert await rooms_of_bob() == [(room_id, "join")]
    assert await rooms_of_bob() == [(room_id, "join")]  # from memory
    assert (await bob.post(f"{V3}/rooms/{room_id}/leave", {})).status == 200
    assert await rooms_of_bob() == [(room_id, "leave")]
    assert (await bob.post(f"{V3}/rooms/{room_id}/forget", {})).status == 200
    assert await rooms_of_bob() == []
    # Alice's list was not touched by Bob's changes, and is still right.
    assert [(r, m) for r, m, _, _ in await memberships.get("@alice:test.local")] == [
        (room_id, "join")]
