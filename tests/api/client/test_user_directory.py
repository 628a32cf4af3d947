"""User directory search over real HTTP: who is visible, how terms match, limits and errors."""

from __future__ import annotations

from typing import Any

from harness import Client, RunningServer
from harness import logged_in_user as user
from server_fixtures import ServerFactory

V3 = "/_matrix/client/v3"
SEARCH = f"{V3}/user_directory/search"


async def search(client: Client, term: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(SEARCH, {"search_term": term, **body})
    assert resp.status == 200, resp
    result: dict[str, Any] = resp.json
    return result


async def found(client: Client, term: str) -> list[str]:
    return [r["user_id"] for r in (await search(client, term))["results"]]


async def create_room(client: Client, **body: Any) -> str:
    resp = await client.post(f"{V3}/createRoom", body)
    assert resp.status == 200, resp
    return str(resp.json["room_id"])


async def set_name(client: Client, user_id: str, name: str) -> None:
    resp = await client.request("PUT", f"{V3}/profile/{user_id}/displayname",
                                {"displayname": name})
    assert resp.status == 200, resp


async def populate(server: RunningServer) -> dict[str, Client]:
    """alice shares a private room with bob; carol sits alone in a public room, erin alone in
    a world-readable one, dave alone in a private one."""
    people = {name: await user(server, name) for name in ("alice", "bob", "carol", "dave",
                                                         "erin")}
    shared = await create_room(people["alice"], preset="private_chat",
                               invite=["@bob:test.local"])
    assert (await people["bob"].post(f"{V3}/rooms/{shared}/join", {})).status == 200
    await create_room(people["carol"], preset="public_chat")
    await create_room(people["dave"], preset="private_chat")
    await create_room(people["erin"], preset="private_chat", initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "world_readable"}}])
    return people


async def test_who_can_be_found(homeserver: RunningServer) -> None:
    people = await populate(homeserver)
    alice = people["alice"]
    assert await found(alice, "bob") == ["@bob:test.local"]  # shares a room
    assert await found(alice, "carol") == ["@carol:test.local"]  # in a public room
    assert await found(alice, "erin") == ["@erin:test.local"]  # in a world-readable room
    assert await found(alice, "dave") == []  # neither
    assert await found(people["dave"], "bob") == []
    assert await found(people["dave"], "dave") == ["@dave:test.local"]  # in his own room
    await user(homeserver, "frank")  # in no room at all
    assert await found(alice, "frank") == []


async def test_matching_and_ranking(homeserver: RunningServer) -> None:
    people = await populate(homeserver)
    alice = people["alice"]
    await set_name(people["bob"], "@bob:test.local", "Robert Tables")
    await set_name(people["carol"], "@carol:test.local", "Ça Rôle")
    result = await search(alice, "ROBERT")
    assert result == {"results": [{"user_id": "@bob:test.local",
                                   "display_name": "Robert Tables"}], "limited": False}
    assert await found(alice, "tables rob") == ["@bob:test.local"]  # words in any order
    assert await found(alice, "obe") == ["@bob:test.local"]  # anywhere in the name
    assert await found(alice, "bob") == ["@bob:test.local"]  # the localpart still matches
    assert await found(alice, "robert zzz") == []  # every word must match
    assert await found(alice, "ça") == ["@carol:test.local"]
    assert await found(alice, "ÇA RÔLE") == ["@carol:test.local"]
    assert await found(alice, "@bo") == ["@bob:test.local"]  # a user ID prefix
    assert await found(alice, "@bob:test.local") == ["@bob:test.local"]
    assert await found(alice, "@ob") == []
    assert await found(alice, "test") == []  # the server name is not searched
    assert await found(alice, "  ") == []
    assert await found(alice, "%") == []  # LIKE wildcards are plain characters
    # Exact matches first, then prefixes, then the rest.
    await set_name(people["erin"], "@erin:test.local", "Bobby")
    await set_name(people["carol"], "@carol:test.local", "Jimbob")
    assert await found(alice, "bob") == ["@bob:test.local", "@erin:test.local",
                                         "@carol:test.local"]
    # Avatar URLs are served; a removed display name is left out of the result.
    await people["erin"].request("PUT", f"{V3}/profile/@erin:test.local/avatar_url",
                                 {"avatar_url": "mxc://test.local/erin"})
    await people["erin"].request("DELETE", f"{V3}/profile/@erin:test.local/displayname")
    assert (await search(alice, "erin"))["results"] == [
        {"user_id": "@erin:test.local", "avatar_url": "mxc://test.local/erin"}]


async def test_shared_rooms_rank_before_public_ones(homeserver: RunningServer) -> None:
    people = await populate(homeserver)
    await set_name(people["bob"], "@bob:test.local", "Sam One")
    await set_name(people["carol"], "@carol:test.local", "Sam Two")
    assert await found(people["alice"], "sam") == ["@bob:test.local", "@carol:test.local"]
    assert await found(people["dave"], "sam") == ["@carol:test.local"]


async def test_limit(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room = await create_room(alice, preset="public_chat")
    for i in range(12):
        member = await user(homeserver, f"user{i:02d}")
        assert (await member.post(f"{V3}/join/{room}", {})).status == 200
    default = await search(alice, "user")
    assert len(default["results"]) == 10 and default["limited"] is True
    assert [r["user_id"] for r in default["results"]][:2] == ["@user00:test.local",
                                                              "@user01:test.local"]
    assert (await search(alice, "user", limit=12))["limited"] is False
    assert len((await search(alice, "user", limit=500))["results"]) == 12
    none = await search(alice, "user", limit=0)
    assert none == {"results": [], "limited": True}
    assert (await search(alice, "user", limit=-5))["results"] == []


async def test_public_rooms_are_followed(homeserver: RunningServer) -> None:
    people = await populate(homeserver)
    alice = people["alice"]
    assert await found(alice, "carol") == ["@carol:test.local"]
    assert await found(alice, "dave") == []
    carol_room = (await people["carol"].get(f"{V3}/joined_rooms")).json["joined_rooms"][0]
    dave_room = (await people["dave"].get(f"{V3}/joined_rooms")).json["joined_rooms"][0]
    for client, room, rule in ((people["carol"], carol_room, "invite"),
                               (people["dave"], dave_room, "public")):
        resp = await client.request("PUT", f"{V3}/rooms/{room}/state/m.room.join_rules",
                                    {"join_rule": rule})
        assert resp.status == 200, resp
    assert await found(alice, "carol") == []
    assert await found(alice, "dave") == ["@dave:test.local"]
    # Leaving the room hides dave again.
    assert (await people["dave"].post(f"{V3}/rooms/{dave_room}/leave", {})).status == 200
    assert await found(alice, "dave") == []


async def test_search_all_users(start_server: ServerFactory) -> None:
    server = await start_server(user_directory={"search_all_users": True})
    people = await populate(server)
    await user(server, "frank")
    alice = people["alice"]
    assert await found(alice, "dave") == ["@dave:test.local"]
    assert await found(alice, "frank") == ["@frank:test.local"]
    assert await found(alice, "alice") == ["@alice:test.local"]
    await server.services.auth.deactivate("@frank:test.local")
    assert await found(alice, "frank") == []


async def test_deactivated_users_are_hidden(homeserver: RunningServer) -> None:
    people = await populate(homeserver)
    assert await found(people["alice"], "carol") == ["@carol:test.local"]
    await homeserver.services.auth.deactivate("@carol:test.local")
    assert await found(people["alice"], "carol") == []


async def test_disabled_directory_finds_nobody(start_server: ServerFactory) -> None:
    server = await start_server(user_directory={"enabled": False})
    people = await populate(server)
    assert await search(people["alice"], "bob") == {"results": [], "limited": False}


async def test_errors(start_server: ServerFactory) -> None:
    server = await start_server(registration={"allow_guests": True})
    alice = await user(server, "alice")
    missing = await alice.post(SEARCH, {"limit": 3})
    assert missing.status == 400 and missing.json["errcode"] == "M_BAD_JSON"
    wrong = await alice.post(SEARCH, {"search_term": "a", "limit": "ten"})
    assert wrong.status == 400 and wrong.json["errcode"] == "M_BAD_JSON"
    assert (await alice.post(SEARCH, None)).status == 400
    assert (await server.client.post(SEARCH, {"search_term": "a"})).status == 401
    guest = await server.client.post(f"{V3}/register?kind=guest", {})
    resp = await server.client.post(SEARCH, {"search_term": "a"},
                                    token=guest.json["access_token"])
    assert resp.status == 403 and resp.json["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    r0 = await alice.post("/_matrix/client/r0/user_directory/search", {"search_term": "a"})
    assert r0.status == 200
