"""Room aliases and the published room directory — over real HTTP (the canonical-alias check
through the service, until the state endpoint calls it)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from myelin.errors import MatrixError

from harness import Client, RunningServer

V3 = "/_matrix/client/v3"
HS = "test.local"


async def user(server: RunningServer, name: str, admin: bool = False) -> Client:
    await server.services.auth.register(name, "pw", admin=admin)
    client = Client(server.url, server.client.session)
    assert (await client.login(name, "pw")).status == 200
    return client


async def create(client: Client, **body: Any) -> str:
    resp = await client.post(f"{V3}/createRoom", body)
    assert resp.status == 200, resp
    return str(resp.json["room_id"])


def alias_path(alias: str) -> str:
    return f"{V3}/directory/room/{quote(alias, safe='')}"


async def put_alias(client: Client, alias: str, room_id: str) -> Any:
    return await client.request("PUT", alias_path(alias), {"room_id": room_id})


async def join(client: Client, room_id: str) -> None:
    resp = await client.post(f"{V3}/join/{quote(room_id, safe='')}", {})
    assert resp.status == 200, resp


async def put_state(client: Client, room_id: str, event_type: str,
                    content: dict[str, Any]) -> Any:
    return await client.request("PUT", f"{V3}/rooms/{room_id}/state/{event_type}", content)


async def publish(client: Client, room_id: str) -> None:
    resp = await client.request("PUT", f"{V3}/directory/list/room/{room_id}",
                                {"visibility": "public"})
    assert resp.status == 200, resp


# -- aliases --


async def test_alias_create_resolve_list_delete(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create(alice)
    resp = await put_alias(alice, f"#lobby:{HS}", room_id)
    assert resp.status == 200 and resp.json == {}
    got = await alice.get(alias_path(f"#lobby:{HS}"))
    assert got.status == 200 and got.json == {"room_id": room_id, "servers": [HS]}
    anonymous = await homeserver.client.get(alias_path(f"#lobby:{HS}"), token="")
    assert anonymous.status == 200 and anonymous.json["room_id"] == room_id
    assert (await put_alias(alice, f"#second:{HS}", room_id)).status == 200
    listed = await alice.get(f"{V3}/rooms/{room_id}/aliases")
    assert listed.status == 200
    assert listed.json == {"aliases": [f"#lobby:{HS}", f"#second:{HS}"]}
    # Aliases work where room IDs do, e.g. to join.
    bob = await user(homeserver, "bob")
    other = await create(alice, preset="public_chat")
    assert (await put_alias(alice, f"#open:{HS}", other)).status == 200
    assert (await bob.post(f"{V3}/join/{quote(f'#open:{HS}')}", {})).json == {"room_id": other}

    deleted = await alice.request("DELETE", alias_path(f"#lobby:{HS}"))
    assert deleted.status == 200 and deleted.json == {}
    gone = await alice.get(alias_path(f"#lobby:{HS}"))
    assert gone.status == 404 and gone.json["errcode"] == "M_NOT_FOUND"
    again = await alice.request("DELETE", alias_path(f"#lobby:{HS}"))
    assert again.status == 404 and again.json["errcode"] == "M_NOT_FOUND"
    listed = await alice.get(f"{V3}/rooms/{room_id}/aliases")
    assert listed.json == {"aliases": [f"#second:{HS}"]}
    # Once deleted, the alias is free again, for any room.
    assert (await put_alias(alice, f"#lobby:{HS}", other)).status == 200


async def test_alias_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await create(alice)
    assert (await put_alias(alice, f"#taken:{HS}", room_id)).status == 200
    taken = await put_alias(alice, f"#taken:{HS}", room_id)
    assert taken.status == 409 and taken.json["errcode"] == "M_UNKNOWN"
    elsewhere = await put_alias(alice, "#lobby:other.example", room_id)
    assert elsewhere.status == 400 and elsewhere.json["errcode"] == "M_INVALID_PARAM"
    outsider = await put_alias(bob, f"#mine:{HS}", room_id)
    assert outsider.status == 403 and outsider.json["errcode"] == "M_FORBIDDEN"
    unknown_room = await put_alias(bob, f"#mine:{HS}", "!nope:test.local")
    assert unknown_room.status == 403
    for bad in ("lobby:test.local", "#lobby", f"#a b:{HS}", f"#:{HS}", f"#tab\t:{HS}",
                f"#nul\x00:{HS}", "#x:bad server", "#" + "x" * 250 + f":{HS}"):
        for method in ("PUT", "GET", "DELETE"):
            resp = await alice.request(method, alias_path(bad),
                                       {"room_id": room_id} if method == "PUT" else None)
            assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM", \
                (bad, method, resp)
    longest = "#" + "x" * (255 - len(f"#:{HS}")) + f":{HS}"
    assert (await put_alias(alice, longest, room_id)).status == 200
    bad_room = await put_alias(alice, f"#ok:{HS}", "not-a-room")
    assert bad_room.status == 400 and bad_room.json["errcode"] == "M_INVALID_PARAM"
    no_room = await alice.request("PUT", alias_path(f"#ok:{HS}"), {})
    assert no_room.status == 400 and no_room.json["errcode"] == "M_BAD_JSON"
    anonymous = await homeserver.client.request("PUT", alias_path(f"#ok:{HS}"),
                                                {"room_id": room_id}, token="")
    assert anonymous.status == 401
    unknown = await alice.get(alias_path(f"#unknown:{HS}"))
    assert unknown.status == 404 and unknown.json["errcode"] == "M_NOT_FOUND"
    # An alias of a server that cannot be reached (reachable ones: tests/federation).
    remote = await alice.get(alias_path("#lobby:other.invalid"))
    assert remote.status == 502 and remote.json["errcode"] == "M_UNKNOWN"
    remote_delete = await alice.request("DELETE", alias_path("#lobby:other.example"))
    assert remote_delete.status == 400 and remote_delete.json["errcode"] == "M_INVALID_PARAM"
    anonymous_delete = await homeserver.client.request("DELETE", alias_path(f"#taken:{HS}"),
                                                       token="")
    assert anonymous_delete.status == 401


async def test_server_admin_may_alias_any_known_room(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    admin = await user(homeserver, "root", admin=True)
    room_id = await create(alice)
    assert (await put_alias(admin, f"#byadmin:{HS}", room_id)).status == 200
    assert (await admin.get(alias_path(f"#byadmin:{HS}"))).json["room_id"] == room_id
    unknown = await put_alias(admin, f"#ghost:{HS}", "!nope:test.local")
    assert unknown.status == 404 and unknown.json["errcode"] == "M_NOT_FOUND"
    listed = await admin.get(f"{V3}/rooms/{room_id}/aliases")
    assert listed.status == 200 and listed.json["aliases"] == [f"#byadmin:{HS}"]


async def test_alias_delete_permissions(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    carol = await user(homeserver, "carol")
    dave = await user(homeserver, "dave")
    admin = await user(homeserver, "root", admin=True)
    room_id = await create(alice, preset="public_chat")
    for member in (bob, carol):
        await join(member, room_id)
    assert (await put_alias(bob, f"#bobs:{HS}", room_id)).status == 200
    assert (await put_alias(carol, f"#carols:{HS}", room_id)).status == 200
    assert (await put_alias(carol, f"#carols2:{HS}", room_id)).status == 200
    assert (await put_alias(carol, f"#carols3:{HS}", room_id)).status == 200
    # A member without the power to send m.room.canonical_alias may not delete others' aliases.
    no_power = await bob.request("DELETE", alias_path(f"#carols:{HS}"))
    assert no_power.status == 403 and no_power.json["errcode"] == "M_FORBIDDEN"
    outsider = await dave.request("DELETE", alias_path(f"#carols:{HS}"))
    assert outsider.status == 403 and outsider.json["errcode"] == "M_FORBIDDEN"
    # Its creator may, whatever their power; so may a room moderator and a server admin.
    assert (await bob.request("DELETE", alias_path(f"#bobs:{HS}"))).status == 200
    assert (await alice.request("DELETE", alias_path(f"#carols:{HS}"))).status == 200
    assert (await admin.request("DELETE", alias_path(f"#carols2:{HS}"))).status == 200
    # Power granted later counts.
    levels = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.power_levels")).json
    levels["users"]["@bob:test.local"] = 50
    assert (await put_state(alice, room_id, "m.room.power_levels", levels)).status == 200
    assert (await bob.request("DELETE", alias_path(f"#carols3:{HS}"))).status == 200
    remaining = await alice.get(f"{V3}/rooms/{room_id}/aliases")
    assert remaining.json == {"aliases": []}


async def test_local_aliases_access(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await create(alice)
    assert (await put_alias(alice, f"#private:{HS}", room_id)).status == 200
    outsider = await bob.get(f"{V3}/rooms/{room_id}/aliases")
    assert outsider.status == 403 and outsider.json["errcode"] == "M_FORBIDDEN"
    unknown = await bob.get(f"{V3}/rooms/!nope:test.local/aliases")
    assert unknown.status == 403
    anonymous = await homeserver.client.get(f"{V3}/rooms/{room_id}/aliases", token="")
    assert anonymous.status == 401
    resp = await put_state(alice, room_id, "m.room.history_visibility",
                           {"history_visibility": "world_readable"})
    assert resp.status == 200
    readable = await bob.get(f"{V3}/rooms/{room_id}/aliases")
    assert readable.status == 200 and readable.json == {"aliases": [f"#private:{HS}"]}


async def test_deleting_an_alias_drops_it_from_the_canonical_alias(
        homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create(alice, room_alias_name="main")
    assert (await put_alias(alice, f"#alt:{HS}", room_id)).status == 200
    assert (await put_alias(alice, f"#alt2:{HS}", room_id)).status == 200
    content = {"alias": f"#main:{HS}", "alt_aliases": [f"#alt:{HS}", f"#alt2:{HS}"]}
    assert (await put_state(alice, room_id, "m.room.canonical_alias", content)).status == 200
    assert (await alice.request("DELETE", alias_path(f"#alt:{HS}"))).status == 200
    state = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.canonical_alias")).json
    assert state == {"alias": f"#main:{HS}", "alt_aliases": [f"#alt2:{HS}"]}
    assert (await alice.request("DELETE", alias_path(f"#main:{HS}"))).status == 200
    assert (await alice.request("DELETE", alias_path(f"#alt2:{HS}"))).status == 200
    state = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.canonical_alias")).json
    assert state == {}


# -- the m.room.canonical_alias check (called by PUT /rooms/{roomId}/state) --


async def bad(coro: Any) -> str:
    with pytest.raises(MatrixError) as caught:
        await coro
    assert caught.value.status == 400
    return caught.value.errcode


async def test_canonical_alias_check(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create(alice)
    other_room = await create(alice)
    for alias, target in (("good", room_id), ("good2", room_id), ("elsewhere", other_room)):
        assert (await put_alias(alice, f"#{alias}:{HS}", target)).status == 200
    check = homeserver.services.directory.check_canonical_alias
    await check(room_id, {})
    await check(room_id, {"alias": None, "alt_aliases": None})
    await check(room_id, {"alias": ""})
    await check(room_id, {"alias": f"#good:{HS}", "alt_aliases": [f"#good2:{HS}"]})
    # Other servers' aliases cannot be checked here and are let through.
    await check(room_id, {"alias": "#any:other.example", "alt_aliases": ["#x:other.example"]})
    assert await bad(check(room_id, {"alias": f"#elsewhere:{HS}"})) == "M_BAD_ALIAS"
    assert await bad(check(room_id, {"alias": f"#missing:{HS}"})) == "M_BAD_ALIAS"
    assert await bad(check(room_id, {"alt_aliases": [f"#good:{HS}", f"#missing:{HS}"]})) == \
        "M_BAD_ALIAS"
    assert await bad(check(room_id, {"alias": "no-sigil"})) == "M_INVALID_PARAM"
    assert await bad(check(room_id, {"alias": f"#a b:{HS}"})) == "M_INVALID_PARAM"
    assert await bad(check(room_id, {"alias": 5})) == "M_INVALID_PARAM"
    assert await bad(check(room_id, {"alt_aliases": f"#good:{HS}"})) == "M_INVALID_PARAM"
    assert await bad(check(room_id, {"alt_aliases": [7]})) == "M_INVALID_PARAM"
    assert await bad(check(room_id, {"alt_aliases": ["#nocolon"]})) == "M_INVALID_PARAM"

    # Aliases the room already advertises are not checked again: one deleted (or re-pointed)
    # since does not stop the room from editing the rest.
    content = {"alias": f"#good:{HS}", "alt_aliases": [f"#good2:{HS}"]}
    await check(room_id, content)
    assert (await put_state(alice, room_id, "m.room.canonical_alias", content)).status == 200
    admin = await user(homeserver, "root", admin=True)
    # The admin is not in the room, so the canonical alias event keeps #good2.
    assert (await admin.request("DELETE", alias_path(f"#good2:{HS}"))).status == 200
    assert (await put_alias(alice, f"#good2:{HS}", other_room)).status == 200
    await check(room_id, {"alias": f"#good:{HS}", "alt_aliases": [f"#good2:{HS}"]})
    await check(room_id, {"alt_aliases": [f"#good2:{HS}", f"#good:{HS}"]})
    assert await bad(check(room_id, {"alt_aliases": [f"#good2:{HS}", f"#elsewhere:{HS}"]})) \
        == "M_BAD_ALIAS"


# -- published room directory --


async def test_room_visibility(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    carol = await user(homeserver, "carol")
    admin = await user(homeserver, "root", admin=True)
    room_id = await create(alice, preset="public_chat")
    await join(bob, room_id)
    path = f"{V3}/directory/list/room/{room_id}"
    initial = await homeserver.client.get(path, token="")
    assert initial.status == 200 and initial.json == {"visibility": "private"}
    assert (await alice.request("PUT", path, {"visibility": "public"})).json == {}
    assert (await bob.get(path)).json == {"visibility": "public"}
    again = await alice.request("PUT", path, {"visibility": "public"})
    assert again.status == 200  # no change needed is fine
    no_power = await bob.request("PUT", path, {"visibility": "private"})
    assert no_power.status == 403 and no_power.json["errcode"] == "M_FORBIDDEN"
    outsider = await carol.request("PUT", path, {"visibility": "private"})
    assert outsider.status == 403 and outsider.json["errcode"] == "M_FORBIDDEN"
    assert (await admin.request("PUT", path, {"visibility": "private"})).status == 200
    assert (await bob.get(path)).json == {"visibility": "private"}
    defaulted = await alice.request("PUT", path, {})
    assert defaulted.status == 200 and (await bob.get(path)).json == {"visibility": "public"}
    invalid = await alice.request("PUT", path, {"visibility": "secret"})
    assert invalid.status == 400 and invalid.json["errcode"] == "M_INVALID_PARAM"
    anonymous = await homeserver.client.request("PUT", path, {"visibility": "private"},
                                                token="")
    assert anonymous.status == 401
    unknown = f"{V3}/directory/list/room/!nope:test.local"
    got = await alice.get(unknown)
    assert got.status == 404 and got.json["errcode"] == "M_NOT_FOUND"
    put = await alice.request("PUT", unknown, {"visibility": "public"})
    assert put.status == 404 and put.json["errcode"] == "M_NOT_FOUND"


async def test_public_rooms_entries(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await create(alice, preset="public_chat", name="Cheese", topic="Tasty cheese",
                           room_alias_name="cheese", creation_content={"type": "m.space"})
    await put_state(alice, room_id, "m.room.avatar", {"url": "mxc://test.local/cheddar"})
    await put_state(alice, room_id, "m.room.history_visibility",
                    {"history_visibility": "world_readable"})
    await put_state(alice, room_id, "m.room.guest_access", {"guest_access": "can_join"})
    await join(bob, room_id)
    bare = await create(alice, preset="private_chat")
    await create(alice, preset="public_chat", name="Unpublished")
    await publish(alice, room_id)
    await publish(alice, bare)

    listing = await homeserver.client.get(f"{V3}/publicRooms", token="")
    assert listing.status == 200
    assert listing.json == {
        "chunk": [
            {"room_id": room_id, "name": "Cheese", "topic": "Tasty cheese",
             "canonical_alias": f"#cheese:{HS}", "num_joined_members": 2,
             "world_readable": True, "guest_can_join": True, "join_rule": "public",
             "avatar_url": "mxc://test.local/cheddar", "room_type": "m.space"},
            {"room_id": bare, "num_joined_members": 1, "world_readable": False,
             "guest_can_join": True, "join_rule": "invite"},
        ],
        "total_room_count_estimate": 2,
    }
    # POST gives the same, and filters by room type (null: rooms without one).
    posted = await alice.post(f"{V3}/publicRooms", {})
    assert posted.status == 200 and posted.json == listing.json
    spaces = await alice.post(f"{V3}/publicRooms", {"filter": {"room_types": ["m.space"]}})
    assert [r["room_id"] for r in spaces.json["chunk"]] == [room_id]
    untyped = await alice.post(f"{V3}/publicRooms", {"filter": {"room_types": [None]}})
    assert [r["room_id"] for r in untyped.json["chunk"]] == [bare]
    anonymous_post = await homeserver.client.post(f"{V3}/publicRooms", {}, token="")
    assert anonymous_post.status == 401
    # Unpublishing removes it; leaving members are counted out.
    await alice.request("PUT", f"{V3}/directory/list/room/{bare}", {"visibility": "private"})
    assert (await bob.post(f"{V3}/rooms/{room_id}/leave", {})).status == 200
    after = (await alice.get(f"{V3}/publicRooms")).json
    assert [(r["room_id"], r["num_joined_members"]) for r in after["chunk"]] == [(room_id, 1)]


async def make_directory(homeserver: RunningServer) -> tuple[Client, list[str]]:
    """Seven published rooms; room i has i+1 joined members, so the order is 6, 5, ... 0."""
    alice = await user(homeserver, "alice")
    others = [await user(homeserver, f"u{n}") for n in range(6)]
    rooms = []
    for i in range(7):
        room_id = await create(alice, preset="public_chat", name=f"Room {i}",
                               topic="about cats" if i % 2 else "about dogs")
        for member in others[:i]:
            await join(member, room_id)
        await publish(alice, room_id)
        rooms.append(room_id)
    return alice, rooms


async def test_public_rooms_pagination(homeserver: RunningServer) -> None:
    alice, rooms = await make_directory(homeserver)
    expected = list(reversed(rooms))
    full = (await alice.get(f"{V3}/publicRooms")).json
    assert [r["room_id"] for r in full["chunk"]] == expected
    assert [r["num_joined_members"] for r in full["chunk"]] == [7, 6, 5, 4, 3, 2, 1]
    assert "next_batch" not in full and "prev_batch" not in full

    seen, pages, since = [], [], None
    while True:
        query = "?limit=3" + (f"&since={quote(since)}" if since else "")
        page = (await alice.get(f"{V3}/publicRooms{query}")).json
        assert page["total_room_count_estimate"] == 7
        pages.append(page)
        seen += [r["room_id"] for r in page["chunk"]]
        since = page.get("next_batch")
        if since is None:
            break
    assert seen == expected and [len(p["chunk"]) for p in pages] == [3, 3, 1]
    assert "prev_batch" not in pages[0] and "prev_batch" in pages[1] and "prev_batch" in pages[2]

    # Backwards from the last page, through POST.
    back = (await alice.post(f"{V3}/publicRooms",
                             {"limit": 3, "since": pages[2]["prev_batch"]})).json
    assert [r["room_id"] for r in back["chunk"]] == expected[3:6]
    assert "next_batch" in back and "prev_batch" in back
    back = (await alice.post(f"{V3}/publicRooms", {"limit": 3, "since": back["prev_batch"]})).json
    assert [r["room_id"] for r in back["chunk"]] == expected[:3]
    assert "prev_batch" not in back
    forward = (await alice.post(f"{V3}/publicRooms",
                                {"limit": 2, "since": back["next_batch"]})).json
    assert [r["room_id"] for r in forward["chunk"]] == expected[3:5]

    # Tokens mark a position, not an offset: a room moving up does not repeat or skip others.
    first = (await alice.get(f"{V3}/publicRooms?limit=2")).json
    newcomer = await user(homeserver, "newcomer")
    await join(newcomer, rooms[0])  # moves up, past rooms[1] or level with it, not past page 1
    rest = (await alice.get(f"{V3}/publicRooms?since={quote(first['next_batch'])}")).json
    listed = [r["room_id"] for r in first["chunk"] + rest["chunk"]]
    assert listed[:2] == expected[:2] and sorted(listed) == sorted(rooms)
    # limit=0 is no limit, as in Synapse.
    assert len((await alice.get(f"{V3}/publicRooms?limit=0")).json["chunk"]) == 7


async def test_public_rooms_search(homeserver: RunningServer) -> None:
    alice, rooms = await make_directory(homeserver)
    assert (await put_alias(alice, f"#parrots:{HS}", rooms[2])).status == 200
    content = {"alias": f"#parrots:{HS}"}
    assert (await put_state(alice, rooms[2], "m.room.canonical_alias", content)).status == 200

    async def search(term: str, **body: Any) -> dict[str, Any]:
        resp = await alice.post(f"{V3}/publicRooms",
                                {"filter": {"generic_search_term": term}, **body})
        assert resp.status == 200, resp
        return dict(resp.json)

    cats = await search("CATS")  # case-insensitive, over the topic
    assert [r["room_id"] for r in cats["chunk"]] == [rooms[5], rooms[3], rooms[1]]
    by_name = await search(" room 4 ")
    assert [r["room_id"] for r in by_name["chunk"]] == [rooms[4]]
    by_alias = await search("parrot")
    assert [r["room_id"] for r in by_alias["chunk"]] == [rooms[2]]
    assert (await search("hamsters"))["chunk"] == []
    assert len((await search(""))["chunk"]) == 7
    page1 = await search("dogs", limit=2)
    assert [r["room_id"] for r in page1["chunk"]] == [rooms[6], rooms[4]]
    page2 = await search("dogs", limit=2, since=page1["next_batch"])
    assert [r["room_id"] for r in page2["chunk"]] == [rooms[2], rooms[0]]
    assert "next_batch" not in page2 and "prev_batch" in page2
    back = await search("dogs", limit=2, since=page2["prev_batch"])
    assert [r["room_id"] for r in back["chunk"]] == [rooms[6], rooms[4]]
    assert "prev_batch" not in back


async def test_public_rooms_parameters(homeserver: RunningServer) -> None:
    alice, rooms = await make_directory(homeserver)
    own = await alice.get(f"{V3}/publicRooms?server={HS}&limit=1")
    assert own.status == 200 and own.json["chunk"][0]["room_id"] == rooms[6]
    remote = await alice.get(f"{V3}/publicRooms?server=other.example")
    assert remote.status == 502 and remote.json["errcode"] == "M_UNKNOWN"
    remote_post = await alice.post(f"{V3}/publicRooms?server=other.example", {})
    assert remote_post.status == 502
    invalid_server = await alice.get(f"{V3}/publicRooms?server=bad%20name")
    assert invalid_server.status == 400 and invalid_server.json["errcode"] == "M_INVALID_PARAM"
    all_networks = await alice.post(f"{V3}/publicRooms", {"include_all_networks": True})
    assert len(all_networks.json["chunk"]) == 7
    network = await alice.post(f"{V3}/publicRooms", {"third_party_instance_id": "irc"})
    assert network.status == 200 and network.json["chunk"] == []
    both = await alice.post(f"{V3}/publicRooms", {"include_all_networks": True,
                                                  "third_party_instance_id": "irc"})
    assert both.status == 400 and both.json["errcode"] == "M_INVALID_PARAM"
    for since in ("garbage", "n12", "nx:!a", "q1:!a"):
        resp = await alice.get(f"{V3}/publicRooms?since={quote(since)}")
        assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM", since
    negative = await alice.get(f"{V3}/publicRooms?limit=-1")
    assert negative.status == 400 and negative.json["errcode"] == "M_INVALID_PARAM"
    not_int = await alice.get(f"{V3}/publicRooms?limit=ten")
    assert not_int.status == 400 and not_int.json["errcode"] == "M_INVALID_PARAM"
    bad_body = await alice.post(f"{V3}/publicRooms", {"limit": "ten"})
    assert bad_body.status == 400 and bad_body.json["errcode"] == "M_BAD_JSON"
    # A token past the end gives an empty page that leads back.
    last = (await alice.get(f"{V3}/publicRooms?limit=7")).json
    assert "next_batch" not in last
    beyond = (await alice.get(f"{V3}/publicRooms?since={quote('n0:!zzz')}")).json
    assert beyond["chunk"] == [] and "next_batch" not in beyond
    back = (await alice.get(f"{V3}/publicRooms?limit=2&since={beyond['prev_batch']}")).json
    assert [r["room_id"] for r in back["chunk"]] == [rooms[1], rooms[0]]


async def test_canonical_alias_must_point_at_the_room(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room = await create(alice)
    other = await create(alice)
    assert (await put_alias(alice, "#here:test.local", room)).status == 200
    assert (await put_alias(alice, "#there:test.local", other)).status == 200
    ok = await put_state(alice, room, "m.room.canonical_alias", {"alias": "#here:test.local"})
    assert ok.status == 200
    wrong = await put_state(alice, room, "m.room.canonical_alias",
                            {"alias": "#here:test.local", "alt_aliases": ["#there:test.local"]})
    assert wrong.status == 400 and wrong.json["errcode"] == "M_BAD_ALIAS"
    missing = await put_state(alice, room, "m.room.canonical_alias",
                              {"alias": "#nothing:test.local"})
    assert missing.status == 400 and missing.json["errcode"] == "M_BAD_ALIAS"
    malformed = await put_state(alice, room, "m.room.canonical_alias", {"alias": "nope"})
    assert malformed.status == 400 and malformed.json["errcode"] == "M_INVALID_PARAM"


async def test_create_room_public_visibility_publishes(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    public = await create(alice, visibility="public", name="Listed")
    await create(alice, name="Unlisted")
    listing = await alice.get("/_matrix/client/v3/publicRooms")
    assert [r["room_id"] for r in listing.json["chunk"]] == [public]
    visibility = await alice.get(f"/_matrix/client/v3/directory/list/room/{public}")
    assert visibility.json == {"visibility": "public"}
