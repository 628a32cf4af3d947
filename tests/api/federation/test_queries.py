"""Server-server API, "Querying for information": profiles and room aliases are answered for
this server's own users and aliases only, never relayed to a third server."""

from __future__ import annotations

from typing import Any

import orjson

from federation_fixtures import FederatingFactory, FederatingServer
from harness import logged_in_user

V1 = "/_matrix/federation/v1"


async def query(asker: FederatingServer, asked: FederatingServer, path: str,
                **params: str) -> tuple[int, dict[str, Any]]:
    response = await asker.services.federation_client.request_raw(
        asked.server_name, "GET", f"{V1}{path}", query=params)
    return response.status, orjson.loads(response.body)


async def test_profiles_of_own_users_only(federating_server: FederatingFactory) -> None:
    one = await federating_server()
    two = await federating_server()
    alice = await logged_in_user(one, "alice")
    profile = f"/_matrix/client/v3/profile/{one.user_id('alice')}/displayname"
    assert (await alice.request("PUT", profile, {"displayname": "Alice"})).status == 200
    status, body = await query(two, one, "/query/profile", user_id=one.user_id("alice"))
    assert (status, body.get("displayname")) == (200, "Alice")
    status, body = await query(two, one, "/query/profile", user_id=one.user_id("alice"),
                               field="displayname")
    assert (status, body) == (200, {"displayname": "Alice"})
    # Server two's own user, asked of server one: not relayed back.
    await logged_in_user(two, "bob")
    status, body = await query(two, one, "/query/profile", user_id=two.user_id("bob"))
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await query(two, one, "/query/profile", user_id="not-a-user-id")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_aliases_of_own_server_only(federating_server: FederatingFactory) -> None:
    one = await federating_server()
    two = await federating_server()
    alice = await logged_in_user(one, "alice")
    created = await alice.post("/_matrix/client/v3/createRoom", {"room_alias_name": "lobby"})
    assert created.status == 200, created
    status, body = await query(two, one, "/query/directory",
                               room_alias=f"#lobby:{one.server_name}")
    assert (status, body["room_id"]) == (200, created.json["room_id"])
    assert one.server_name in body["servers"]
    status, body = await query(two, one, "/query/directory",
                               room_alias=f"#lobby:{two.server_name}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await query(two, one, "/query/directory", room_alias="lobby")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
