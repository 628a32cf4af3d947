"""Rooms shared with a real Synapse, in both directions: joins by room ID and alias, messages
both ways in order, invites, leaving and rejoining."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from federation_fixtures import FederatingFactory, Peer
from harness import logged_in_user
from room_helpers import create_room, join, send_text, timeline_texts, wait_for, wait_for_text

pytestmark = pytest.mark.federation


async def test_myelin_user_joins_a_synapse_room(
        federating_server: FederatingFactory, peer: Peer) -> None:
    myelin = await federating_server()
    sue = await peer.user("sue1")
    alice = await logged_in_user(myelin, "alice")
    room_id = await create_room(sue, name="Synapse room")
    await send_text(sue, room_id, "from synapse, before")

    joined = await join(alice, room_id, via=[peer.server_name])
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
        federating_server: FederatingFactory, peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue2")
    room_id = await create_room(alice, name="Myelin room", room_alias_name="lobby")
    await send_text(alice, room_id, "before sue")

    alias = f"#lobby:{myelin.server_name}"
    joined = await join(sue, alias)
    assert joined.status == 200, (joined, peer.log_tail())
    assert joined.json["room_id"] == room_id

    await send_text(alice, room_id, "welcome sue")
    await wait_for_text(sue, room_id, "welcome sue")
    await send_text(sue, room_id, "thanks alice")
    await wait_for_text(alice, room_id, "thanks alice")

    async def sue_is_member() -> bool:
        response = await alice.get(f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members")
        return f"@sue2:{peer.server_name}" in response.json.get("joined", {})
    await wait_for(sue_is_member)


async def test_invites_both_ways(
        federating_server: FederatingFactory, peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue3")
    sue_id = f"@sue3:{peer.server_name}"
    # Myelin invites a Synapse user; she accepts.
    room_id = await create_room(alice, preset="private_chat")
    response = await alice.post(f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
                                {"user_id": sue_id})
    assert response.status == 200, response

    async def sue_invited() -> bool:
        sync = await sue.get("/_matrix/client/v3/sync?timeout=0")
        return room_id in sync.json["rooms"].get("invite", {})
    await wait_for(sue_invited)
    assert (await join(sue, room_id)).status == 200
    await send_text(sue, room_id, "accepted")
    await wait_for_text(alice, room_id, "accepted")

    # Synapse invites a Myelin user; he sees the invite, rejects one and accepts another.
    bob = await logged_in_user(myelin, "bob")
    bob_id = myelin.user_id("bob")
    for name in ("declined", "accepted"):
        other = await create_room(sue, preset="private_chat", name=name)
        response = await sue.post(f"/_matrix/client/v3/rooms/{quote(other)}/invite",
                                  {"user_id": bob_id})
        assert response.status == 200, (response, peer.log_tail())

        async def bob_invited(room: str = other) -> object:
            sync = await bob.get("/_matrix/client/v3/sync?timeout=0")
            return sync.json["rooms"].get("invite", {}).get(room)
        invite = await wait_for(bob_invited)
        names = [e["content"].get("name") for e in invite["invite_state"]["events"]
                 if e["type"] == "m.room.name"]
        assert names == [name]
        if name == "declined":
            left = await bob.post(f"/_matrix/client/v3/rooms/{quote(other)}/leave", {})
            assert left.status == 200, left

            async def sue_sees_decline(room: str = other) -> bool:
                state = await sue.get(
                    f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.member/{bob_id}")
                return state.status == 200 and state.json.get("membership") == "leave"
            await wait_for(sue_sees_decline)
        else:
            assert (await join(bob, other)).status == 200
            await send_text(bob, other, "hi sue")
            await wait_for_text(sue, other, "hi sue")


async def test_power_levels_kick_ban_leave_and_rejoin(
        federating_server: FederatingFactory, peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue4")
    sue_id = f"@sue4:{peer.server_name}"
    room_id = await create_room(alice)
    assert (await join(sue, room_id, via=[myelin.server_name])).status == 200
    # Alice (PL 100) sets the topic; Sue (PL 0) may not.
    topic = await alice.request("PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/state/"
                                "m.room.topic", {"topic": "set by alice"})
    assert topic.status == 200

    async def sue_sees_topic() -> bool:
        state = await sue.get(f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.topic")
        return state.status == 200 and state.json.get("topic") == "set by alice"
    await wait_for(sue_sees_topic)
    refused = await sue.request("PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/state/"
                                "m.room.topic", {"topic": "sue's"})
    assert refused.status == 403
    # Kick, rejoin, leave, rejoin, ban: each reaches the other side.
    kicked = await alice.post(f"/_matrix/client/v3/rooms/{quote(room_id)}/kick",
                              {"user_id": sue_id, "reason": "test"})
    assert kicked.status == 200

    async def sue_membership(expected: str) -> bool:
        state = await sue.get(f"/_matrix/client/v3/rooms/{quote(room_id)}/state/"
                              f"m.room.member/{sue_id}")
        return state.status == 200 and state.json.get("membership") == expected
    await wait_for(lambda: sue_membership("leave"))
    assert (await join(sue, room_id, via=[myelin.server_name])).status == 200
    await send_text(sue, room_id, "back again")
    await wait_for_text(alice, room_id, "back again")
    assert (await sue.post(f"/_matrix/client/v3/rooms/{quote(room_id)}/leave", {})).status == 200

    async def alice_sees(membership: str) -> bool:
        state = await alice.get(f"/_matrix/client/v3/rooms/{quote(room_id)}/state/"
                                f"m.room.member/{sue_id}")
        return state.status == 200 and state.json.get("membership") == membership
    await wait_for(lambda: alice_sees("leave"))
    assert (await join(sue, room_id, via=[myelin.server_name])).status == 200
    await wait_for(lambda: alice_sees("join"))
    banned = await alice.post(f"/_matrix/client/v3/rooms/{quote(room_id)}/ban",
                              {"user_id": sue_id})
    assert banned.status == 200

    async def sue_is_refused() -> bool:  # once Synapse has the ban, her join is refused
        again = await join(sue, room_id, via=[myelin.server_name])
        assert again.status in (200, 403), again
        return again.status == 403
    await wait_for(sue_is_refused)
    assert await alice_sees("ban")


async def paginate_all(client: object, room_id: str) -> list[str]:
    texts: list[str] = []
    token = None
    for _ in range(60):
        query = "dir=b&limit=50" + (f"&from={quote(token)}" if token else "")
        page = await client.get(  # type: ignore[attr-defined]
            f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?{query}")
        assert page.status == 200, page
        texts += [e["content"]["body"] for e in page.json["chunk"]
                  if e["type"] == "m.room.message"]
        token = page.json.get("end")
        if token is None or not page.json["chunk"]:
            break
    return list(reversed(texts))


async def test_backfill_both_ways(
        federating_server: FederatingFactory, peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue5")
    # Synapse's history, read from Myelin after a late join.
    theirs = await create_room(sue, name="Synapse history")
    sent = [f"s{i}" for i in range(200)]
    for text in sent:
        await send_text(sue, theirs, text)
    assert (await join(alice, theirs, via=[peer.server_name])).status == 200
    assert await paginate_all(alice, theirs) == sent
    # Myelin's history, read from Synapse after a late join.
    ours = await create_room(alice, name="Myelin history")
    mine = [f"m{i}" for i in range(200)]
    for text in mine:
        await send_text(alice, ours, text)
    assert (await join(sue, ours, via=[myelin.server_name])).status == 200
    assert await paginate_all(sue, ours) == mine


async def test_knocking_both_ways(
        federating_server: FederatingFactory, peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue10")
    knock_rules = [{"type": "m.room.join_rules", "state_key": "",
                    "content": {"join_rule": "knock"}}]
    # Sue (Synapse) knocks on a Myelin room; alice lets her in.
    ours = await create_room(alice, preset="private_chat", initial_state=knock_rules)
    knocked = await sue.post(f"/_matrix/client/v3/knock/{quote(ours)}"
                             f"?via={quote(myelin.server_name)}", {"reason": "let me in"})
    assert knocked.status == 200, (knocked, peer.log_tail(20))
    sue_id = f"@sue10:{peer.server_name}"

    async def alice_sees_knock() -> bool:
        state = await alice.get(f"/_matrix/client/v3/rooms/{quote(ours)}/state/m.room.member/"
                                f"{quote(sue_id)}")
        return state.status == 200 and state.json.get("membership") == "knock"
    await wait_for(alice_sees_knock)
    invited = await alice.post(f"/_matrix/client/v3/rooms/{quote(ours)}/invite",
                               {"user_id": sue_id})
    assert invited.status == 200, invited
    # Alice (Myelin) knocks on a Synapse room and sees her knock recorded there.
    theirs = await create_room(sue, preset="private_chat", initial_state=knock_rules)
    knocked = await alice.post(f"/_matrix/client/v3/knock/{quote(theirs)}"
                               f"?via={quote(peer.server_name)}", {})
    assert knocked.status == 200, knocked

    async def sue_sees_knock() -> bool:
        state = await sue.get(f"/_matrix/client/v3/rooms/{quote(theirs)}/state/"
                              f"m.room.member/{quote(myelin.user_id('alice'))}")
        return state.status == 200 and state.json.get("membership") == "knock"
    await wait_for(sue_sees_knock)


def restricted_rules(allowed_room: str) -> list[dict[str, object]]:
    return [{"type": "m.room.join_rules", "state_key": "",
             "content": {"join_rule": "restricted",
                         "allow": [{"type": "m.room_membership", "room_id": allowed_room}]}}]


async def test_restricted_joins_both_ways(federating_server: FederatingFactory,
                                          peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue11")
    # The peer's user joins a Myelin restricted room: Myelin authorises the join.
    lobby = await create_room(alice, name="Lobby")
    ours = await create_room(alice, preset="private_chat", initial_state=restricted_rules(lobby))
    assert (await join(sue, lobby, via=[myelin.server_name])).status == 200
    joined = await join(sue, ours, via=[myelin.server_name])
    assert joined.status == 200, (joined, peer.log_tail(20))
    # A Myelin user joins the peer's restricted room: the peer authorises it.
    their_lobby = await create_room(sue, name="Their lobby")
    theirs = await create_room(sue, preset="private_chat",
                               initial_state=restricted_rules(their_lobby))
    assert (await join(alice, their_lobby, via=[peer.server_name])).status == 200
    joined = await join(alice, theirs, via=[peer.server_name])
    assert joined.status == 200, joined
    member = await alice.get(f"/_matrix/client/v3/rooms/{quote(theirs)}/state/m.room.member/"
                             f"{quote(myelin.user_id('alice'))}")
    assert member.json["join_authorised_via_users_server"].endswith(":" + peer.server_name)


async def test_create_room_invites_reach_other_servers(federating_server: FederatingFactory,
                                                       peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue12")
    sue_id = f"@sue12:{peer.server_name}"
    room_id = await create_room(alice, preset="private_chat", invite=[sue_id], is_direct=True)

    async def sue_invited() -> bool:
        sync = await sue.get("/_matrix/client/v3/sync?timeout=0")
        return room_id in sync.json["rooms"].get("invite", {})
    await wait_for(sue_invited)
    assert (await join(sue, room_id)).status == 200
