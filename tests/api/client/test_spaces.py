"""Spaces: ``GET /_matrix/client/v1/rooms/{roomId}/hierarchy`` over real HTTP, with spaces and
their children built through the client API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import pytest

from myelin.core.events import PDU
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS
from myelin.services import spaces
from myelin.services.spaces import child_order_key, is_valid_child

from harness import Client, RunningServer
from harness import logged_in_user as user

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"
HS = "test.local"
MEGOLM = "m.megolm.v1.aes-sha2"


async def create(client: Client, **body: Any) -> str:
    resp = await client.post(f"{V3}/createRoom", body)
    assert resp.status == 200, resp
    return str(resp.json["room_id"])


async def create_space(client: Client, **body: Any) -> str:
    creation = {**body.pop("creation_content", {}), "type": "m.space"}
    return await create(client, creation_content=creation, **body)


async def put_state(client: Client, room_id: str, event_type: str, state_key: str,
                    content: dict[str, Any]) -> None:
    resp = await client.request(
        "PUT", f"{V3}/rooms/{room_id}/state/{event_type}/{quote(state_key, safe='')}", content)
    assert resp.status == 200, resp


async def add_child(client: Client, space: str, child: str, **content: Any) -> None:
    await put_state(client, space, "m.space.child", child, {"via": [HS], **content})


async def join(client: Client, room_id: str) -> None:
    resp = await client.post(f"{V3}/join/{room_id}", {})
    assert resp.status == 200, resp


async def hierarchy(client: Client, room_id: str, **params: Any) -> Any:
    query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
    path = f"{V1}/rooms/{room_id}/hierarchy"
    return await client.get(path + (f"?{urlencode(query)}" if query else ""))


async def room_ids(client: Client, room_id: str, **params: Any) -> list[str]:
    resp = await hierarchy(client, room_id, **params)
    assert resp.status == 200, resp
    assert "next_batch" not in resp.json, resp
    return [room["room_id"] for room in resp.json["rooms"]]


def by_id(resp: Any) -> dict[str, dict[str, Any]]:
    return {room["room_id"]: room for room in resp.json["rooms"]}


# -- the tree --


async def test_nested_spaces_depth_first_with_entries(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    root = await create_space(alice, preset="public_chat", name="Root", topic="All of it")
    sub = await create_space(alice, preset="public_chat", name="Sub")
    general = await create(alice, preset="public_chat", name="General")
    deep = await create(alice, preset="public_chat", name="Deep")
    last = await create(alice, preset="public_chat")
    await add_child(alice, root, general, order="a")
    await add_child(alice, root, sub, order="b")
    await add_child(alice, root, last, order="c")
    await add_child(alice, sub, deep)
    await join(bob, root)

    resp = await hierarchy(bob, root)
    assert resp.status == 200, resp
    # Depth first: the subspace's own children come before the root's next child.
    assert [r["room_id"] for r in resp.json["rooms"]] == [root, general, sub, deep, last]
    assert "next_batch" not in resp.json
    rooms = by_id(resp)
    top = rooms[root]
    assert {k: v for k, v in top.items() if k != "children_state"} == {
        "room_id": root, "name": "Root", "topic": "All of it", "num_joined_members": 2,
        "world_readable": False, "guest_can_join": False, "join_rule": "public",
        "room_type": "m.space", "room_version": "12",
    }
    children = top["children_state"]
    assert [c["state_key"] for c in children] == [general, sub, last]
    for child in children:
        assert set(child) == {"type", "state_key", "content", "sender", "origin_server_ts"}
        assert child["type"] == "m.space.child" and child["sender"] == "@alice:test.local"
        assert isinstance(child["origin_server_ts"], int)
    assert children[0]["content"] == {"via": [HS], "order": "a"}
    assert rooms[sub]["room_type"] == "m.space"
    assert [c["state_key"] for c in rooms[sub]["children_state"]] == [deep]
    leaf = rooms[general]
    assert leaf["children_state"] == [] and "room_type" not in leaf
    assert leaf["name"] == "General" and leaf["num_joined_members"] == 1
    assert "encryption" not in leaf and "allowed_room_ids" not in leaf


async def test_max_depth(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    s0 = await create_space(alice, preset="public_chat")
    s1 = await create_space(alice, preset="public_chat")
    s2 = await create_space(alice, preset="public_chat")
    room = await create(alice, preset="public_chat")
    await add_child(alice, s0, s1)
    await add_child(alice, s1, s2)
    await add_child(alice, s2, room)
    assert await room_ids(alice, s0, max_depth=0) == [s0]
    assert await room_ids(alice, s0, max_depth=1) == [s0, s1]
    assert await room_ids(alice, s0, max_depth=2) == [s0, s1, s2]
    assert await room_ids(alice, s0, max_depth=3) == [s0, s1, s2, room]
    assert await room_ids(alice, s0) == [s0, s1, s2, room]
    # The last room's children_state is still there at the depth limit.
    resp = await hierarchy(alice, s0, max_depth=0)
    assert [c["state_key"] for c in resp.json["rooms"][0]["children_state"]] == [s1]
    # Starting lower in the tree.
    assert await room_ids(alice, s1, max_depth=1) == [s1, s2]


async def test_suggested_only(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    root = await create_space(alice, preset="public_chat")
    sub = await create_space(alice, preset="public_chat")
    suggested = await create(alice, preset="public_chat")
    plain = await create(alice, preset="public_chat")
    deep_suggested = await create(alice, preset="public_chat")
    deep_plain = await create(alice, preset="public_chat")
    under_plain = await create(alice, preset="public_chat")
    plain_space = await create_space(alice, preset="public_chat")
    await add_child(alice, root, sub, order="1", suggested=True)
    await add_child(alice, root, suggested, order="2", suggested=True)
    await add_child(alice, root, plain, order="3")
    await add_child(alice, root, plain_space, order="4", suggested="true")  # not a boolean
    await add_child(alice, sub, deep_suggested, order="1", suggested=True)
    await add_child(alice, sub, deep_plain, order="2", suggested=False)
    await add_child(alice, plain_space, under_plain, suggested=True)

    assert await room_ids(alice, root) == [root, sub, deep_suggested, deep_plain, suggested,
                                           plain, plain_space, under_plain]
    resp = await hierarchy(alice, root, suggested_only=True)
    assert resp.status == 200, resp
    assert [r["room_id"] for r in resp.json["rooms"]] == [root, sub, deep_suggested, suggested]
    rooms = by_id(resp)
    assert [c["state_key"] for c in rooms[root]["children_state"]] == [sub, suggested]
    assert [c["state_key"] for c in rooms[sub]["children_state"]] == [deep_suggested]
    # The root is listed even when nothing points at it as suggested.
    assert await room_ids(alice, plain, suggested_only=True) == [plain]


async def test_child_ordering(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    space = await create_space(alice, preset="public_chat")
    rooms = [await create(alice, preset="public_chat") for _ in range(8)]
    # Sent in this order, so timestamps never decrease along the list.
    await add_child(alice, space, rooms[0])  # no order
    await add_child(alice, space, rooms[1], order="first")
    await add_child(alice, space, rooms[2], order="aaaa")
    await add_child(alice, space, rooms[3])  # no order
    await add_child(alice, space, rooms[4], order=" ")
    await add_child(alice, space, rooms[5], order="x" * 51)  # too long: as if absent
    await add_child(alice, space, rooms[6], order="caf\u00e9")  # not printable ASCII: absent
    await add_child(alice, space, rooms[7], order=7)  # not a string: absent
    resp = await hierarchy(alice, space)
    assert resp.status == 200, resp
    children = resp.json["rooms"][0]["children_state"]
    assert [c["state_key"] for c in children[:3]] == [rooms[4], rooms[2], rooms[1]]
    unordered = sorted(children[3:], key=lambda c: (c["origin_server_ts"], c["state_key"]))
    assert children[3:] == unordered
    assert {c["state_key"] for c in unordered} == {rooms[i] for i in (0, 3, 5, 6, 7)}
    listed = [r["room_id"] for r in resp.json["rooms"]]
    assert listed == [space, *(c["state_key"] for c in children)]


def test_child_order_key_ties() -> None:
    """Same order: by timestamp; same timestamp too: by room ID (the state key)."""
    version = KNOWN_ROOM_VERSIONS["12"]

    def child(state_key: str, ts: int, **content: Any) -> PDU:
        return PDU({"type": "m.space.child", "state_key": state_key, "origin_server_ts": ts,
                    "sender": "@a:x", "content": {"via": ["x"], **content}}, version,
                   event_id=f"${state_key}")

    events = [child("!d", 5), child("!c", 5), child("!b", 9, order="m"), child("!a", 1, order="m"),
              child("!e", 1, order="\x7e"), child("!f", 0, order="\x1f"), child("!g", 3, order="")]
    assert [e.state_key for e in sorted(events, key=child_order_key)] == \
        ["!a", "!b", "!e", "!f", "!g", "!c", "!d"]
    assert is_valid_child(child("!h", 0))
    contents: list[dict[str, Any]] = [{}, {"via": []}, {"via": [1]}, {"via": "x"}, {"via": None}]
    for content in contents:
        event = PDU({"type": "m.space.child", "state_key": "!h", "content": content}, version,
                    event_id="$h")
        assert not is_valid_child(event), content


async def test_children_without_via_unknown_rooms_loops_and_duplicates(
        homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    root = await create_space(alice, preset="public_chat")
    sub = await create_space(alice, preset="public_chat")
    removed = await create(alice, preset="public_chat")
    empty_via = await create(alice, preset="public_chat")
    bad_via = await create(alice, preset="public_chat")
    shared = await create(alice, preset="public_chat")
    unknown = f"!unknown:{HS}"
    await add_child(alice, root, sub, order="1")
    await add_child(alice, root, unknown, order="2")
    await add_child(alice, root, shared, order="3")
    await put_state(alice, root, "m.space.child", removed, {})  # removed from the space
    await put_state(alice, root, "m.space.child", empty_via, {"via": []})
    await put_state(alice, root, "m.space.child", bad_via, {"via": "test.local"})
    await add_child(alice, sub, root)  # a loop
    await add_child(alice, sub, sub)  # a space inside itself
    await add_child(alice, sub, shared)  # also a child of the root
    await add_child(alice, root, root, order="0")

    resp = await hierarchy(alice, root)
    assert resp.status == 200, resp
    assert [r["room_id"] for r in resp.json["rooms"]] == [root, sub, shared]
    rooms = by_id(resp)
    # The unknown room stays in the parent's children_state, but cannot be summarised.
    assert [c["state_key"] for c in rooms[root]["children_state"]] == \
        [root, sub, unknown, shared]
    sub_children = rooms[sub]["children_state"]
    assert {c["state_key"] for c in sub_children} == {root, sub, shared}
    assert sub_children == sorted(sub_children,
                                  key=lambda c: (c["origin_server_ts"], c["state_key"]))


async def test_non_space_room_has_no_children(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room = await create(alice, preset="public_chat")
    other = await create(alice, preset="public_chat")
    await add_child(alice, room, other)
    resp = await hierarchy(alice, room)
    assert resp.status == 200, resp
    assert resp.json == {"rooms": [{**resp.json["rooms"][0], "children_state": []}]}
    assert [r["room_id"] for r in resp.json["rooms"]] == [room]


# -- who sees what --


async def test_children_the_user_cannot_see(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    root = await create_space(alice, preset="public_chat")
    other_space = await create(alice, preset="public_chat")  # bob is not in it
    private = await create(alice, preset="private_chat", name="Private")
    invited = await create(alice, preset="private_chat")
    readable = await create(alice, preset="private_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])
    knock = await create(alice, preset="private_chat", initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    restricted = await create(alice, initial_state=[{
        "type": "m.room.join_rules",
        "content": {"join_rule": "restricted", "allow": [
            {"type": "m.room_membership", "room_id": root}]}}])
    restricted_elsewhere = await create(alice, initial_state=[{
        "type": "m.room.join_rules",
        "content": {"join_rule": "restricted", "allow": [
            {"type": "m.room_membership", "room_id": other_space}]}}])
    knock_restricted = await create(alice, initial_state=[{
        "type": "m.room.join_rules",
        "content": {"join_rule": "knock_restricted", "allow": [
            {"type": "m.room_membership", "room_id": other_space}]}}])
    hidden_space = await create_space(alice, preset="private_chat")
    behind_hidden = await create(alice, preset="public_chat")
    left = await create(alice, preset="private_chat")
    children = [private, invited, readable, knock, restricted, restricted_elsewhere,
                knock_restricted, hidden_space, left]
    for i, child in enumerate(children):
        await add_child(alice, root, child, order=f"{i:02}")
    await add_child(alice, hidden_space, behind_hidden)
    resp = await alice.post(f"{V3}/rooms/{invited}/invite", {"user_id": "@bob:test.local"})
    assert resp.status == 200, resp
    assert (await alice.post(f"{V3}/rooms/{left}/invite", {"user_id": "@bob:test.local"})
            ).status == 200
    await join(bob, left)
    assert (await bob.post(f"{V3}/rooms/{left}/leave", {})).status == 200
    await join(bob, root)

    seen = await room_ids(bob, root)
    assert seen == [root, invited, readable, knock, restricted, knock_restricted]
    # Everything is listed for the creator, who is in every room.
    assert await room_ids(alice, root) == [root, *children[:8], behind_hidden, left]
    # children_state does not depend on what the user may see.
    resp = await hierarchy(bob, root)
    assert [c["state_key"] for c in resp.json["rooms"][0]["children_state"]] == children
    rooms = by_id(resp)
    assert rooms[restricted]["allowed_room_ids"] == [root]
    assert rooms[restricted]["join_rule"] == "restricted"
    assert rooms[knock_restricted]["allowed_room_ids"] == [other_space]
    assert rooms[readable]["world_readable"] is True
    # Restricted rooms open up to members of the allowed rooms.
    await join(bob, other_space)
    assert restricted_elsewhere in await room_ids(bob, root)


async def test_encryption_and_room_version(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    space = await create_space(alice, preset="public_chat", room_version="10")
    secret = await create(alice, preset="public_chat", initial_state=[
        {"type": "m.room.encryption", "content": {"algorithm": MEGOLM}}])
    await add_child(alice, space, secret)
    rooms = by_id(await hierarchy(alice, space))
    assert rooms[space]["room_version"] == "10" and "encryption" not in rooms[space]
    assert rooms[secret]["encryption"] == MEGOLM and rooms[secret]["room_version"] == "12"


# -- pagination --


async def test_pagination(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    root = await create_space(alice, preset="public_chat")
    sub = await create_space(alice, preset="public_chat")
    rooms = [await create(alice, preset="public_chat") for _ in range(4)]
    await add_child(alice, root, rooms[0], order="1")
    await add_child(alice, root, sub, order="2")
    await add_child(alice, root, rooms[1], order="3")
    await add_child(alice, sub, rooms[2], order="1")
    await add_child(alice, sub, rooms[3], order="2")
    everything = await room_ids(alice, root)
    assert everything == [root, rooms[0], sub, rooms[2], rooms[3], rooms[1]]

    pages: list[list[str]] = []
    token = None
    tokens = []
    while True:
        params: dict[str, Any] = {"limit": 2}
        if token is not None:
            params["from"] = token
        resp = await hierarchy(alice, root, **params)
        assert resp.status == 200, resp
        pages.append([r["room_id"] for r in resp.json["rooms"]])
        token = resp.json.get("next_batch")
        if token is None:
            break
        assert isinstance(token, str) and token
        tokens.append(token)
    assert pages == [everything[0:2], everything[2:4], everything[4:6]]
    # The same token again gives the same page (a retried request).
    again = await hierarchy(alice, root, limit=2, **{"from": tokens[0]})
    assert [r["room_id"] for r in again.json["rooms"]] == everything[2:4]
    # The limit may change between pages.
    rest = await hierarchy(alice, root, limit=10, **{"from": tokens[0]})
    assert [r["room_id"] for r in rest.json["rooms"]] == everything[2:]
    assert "next_batch" not in rest.json

    # The token belongs to this user, this room and these parameters.
    mismatches: list[tuple[Client, str, dict[str, Any]]] = [
        (alice, root, {"suggested_only": True}),
        (alice, root, {"max_depth": 3}),
        (alice, sub, {}),
        (bob, root, {}),
    ]
    for client, room, params in mismatches:
        bad = await hierarchy(client, room, **{"from": tokens[0], **params})
        assert bad.status == 400 and bad.json["errcode"] == "M_INVALID_PARAM", (params, bad)
    # With max_depth given, it must be given again, with the same value.
    first = await hierarchy(alice, root, limit=1, max_depth=1)
    depth_token = first.json["next_batch"]
    assert (await hierarchy(alice, root, **{"from": depth_token})).status == 400
    assert (await hierarchy(alice, root, max_depth=2, **{"from": depth_token})).status == 400
    ok = await hierarchy(alice, root, max_depth=1, **{"from": depth_token})
    assert [r["room_id"] for r in ok.json["rooms"]] == [rooms[0], sub, rooms[1]]


async def test_pagination_tokens_expire(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    root = await create_space(alice, preset="public_chat")
    await add_child(alice, root, await create(alice, preset="public_chat"))
    token = (await hierarchy(alice, root, limit=1)).json["next_batch"]
    homeserver.services.spaces.session_lifetime_s = 0
    expired = await hierarchy(alice, root, limit=1, **{"from": token})
    assert expired.status == 400 and expired.json["errcode"] == "M_INVALID_PARAM"


async def test_pagination_skips_hidden_rooms_across_pages(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    root = await create_space(alice, preset="public_chat")
    visible = []
    for i in range(6):
        room = await create(alice, preset="public_chat" if i % 2 else "private_chat")
        await add_child(alice, root, room, order=str(i))
        if i % 2:
            visible.append(room)
    listed: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    for _ in range(5):
        resp = await hierarchy(bob, root, **params)
        assert resp.status == 200, resp
        listed += [r["room_id"] for r in resp.json["rooms"]]
        if "next_batch" not in resp.json:
            break
        params["from"] = resp.json["next_batch"]
    assert listed == [root, *visible]


async def test_walk_pauses_after_many_hidden_rooms(homeserver: RunningServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A request looks at a bounded number of rooms: past it, the page may be short (even
    empty) but comes with a token for the rest."""
    monkeypatch.setattr(spaces, "MAX_EXAMINED", 3)
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    root = await create_space(alice, preset="public_chat")
    hidden = [await create(alice, preset="private_chat") for _ in range(4)]
    shown = await create(alice, preset="public_chat")
    for i, room in enumerate([*hidden, shown]):
        await add_child(alice, root, room, order=str(i))
    await add_child(alice, root, f"!gone:{HS}", order="9")
    pages: list[list[str]] = []
    params: dict[str, Any] = {}
    for _ in range(5):
        resp = await hierarchy(bob, root, **params)
        assert resp.status == 200, resp
        pages.append([r["room_id"] for r in resp.json["rooms"]])
        if "next_batch" not in resp.json:
            break
        params["from"] = resp.json["next_batch"]
    assert pages == [[root], [shown], []]


# -- errors --


async def test_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    space = await create_space(alice, preset="public_chat")
    private = await create_space(alice, preset="private_chat")

    for room in (f"!unknown:{HS}", "not-a-room", private):
        resp = await hierarchy(bob, room)
        assert resp.status == 403 and resp.json["errcode"] == "M_FORBIDDEN", (room, resp)
    for params in ({"limit": -1}, {"limit": 0}, {"limit": "ten"}, {"max_depth": -1},
                   {"max_depth": "deep"}, {"suggested_only": "yes"},
                   {"from": "not-a-token"}, {"from": ""}):
        resp = await hierarchy(alice, space, **params)
        assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM", (params, resp)
    anonymous = await homeserver.client.get(f"{V1}/rooms/{space}/hierarchy", token="")
    assert anonymous.status == 401
    assert (await alice.get(f"{V3}/rooms/{space}/hierarchy")).status in (400, 404)

    # A ban: no permission to join a public space, so no hierarchy either.
    await join(bob, space)
    assert (await hierarchy(bob, space)).status == 200
    resp = await alice.post(f"{V3}/rooms/{space}/ban", {"user_id": "@bob:test.local"})
    assert resp.status == 200, resp
    banned = await hierarchy(bob, space)
    assert banned.status == 403 and banned.json["errcode"] == "M_FORBIDDEN"


async def test_inaccessible_root_becomes_accessible_by_invite(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    private = await create_space(alice, preset="private_chat", name="Secret")
    assert (await hierarchy(bob, private)).status == 403
    resp = await alice.post(f"{V3}/rooms/{private}/invite", {"user_id": "@bob:test.local"})
    assert resp.status == 200, resp
    got = await hierarchy(bob, private)
    assert got.status == 200 and got.json["rooms"][0]["name"] == "Secret"
