"""Profiles over real HTTP: default name, fields, limits, errors, and propagation to rooms."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from harness import Client, RunningServer
from harness import logged_in_user as user
from server_fixtures import ServerFactory

V3 = "/_matrix/client/v3"
ALICE = "@alice:test.local"
BOB = "@bob:test.local"


def profile(user_id: str, key: str | None = None) -> str:
    path = f"{V3}/profile/{quote(user_id, safe='@:')}"
    return path if key is None else f"{path}/{quote(key, safe='')}"


async def member_event(client: Client, room_id: str, user_id: str) -> dict[str, Any]:
    resp = await client.get(f"{V3}/rooms/{room_id}/state/m.room.member/{user_id}")
    assert resp.status == 200, resp
    content: dict[str, Any] = resp.json
    return content


async def create_room(client: Client, **body: Any) -> str:
    resp = await client.post(f"{V3}/createRoom", body)
    assert resp.status == 200, resp
    return str(resp.json["room_id"])


async def test_new_users_are_named_after_their_localpart(homeserver: RunningServer) -> None:
    await user(homeserver, "alice")
    anonymous = homeserver.client  # reading a profile needs no access token
    assert (await anonymous.get(profile(ALICE))).json == {"displayname": "alice"}
    assert (await anonymous.get(profile(ALICE, "displayname"))).json == {"displayname": "alice"}
    missing = await anonymous.get(profile(ALICE, "avatar_url"))
    assert missing.status == 404 and missing.json["errcode"] == "M_NOT_FOUND"
    r0 = await anonymous.get(f"/_matrix/client/r0/profile/{ALICE}/displayname")
    assert r0.json == {"displayname": "alice"}


async def test_set_get_and_delete_fields(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    for key, value in [("displayname", "Alice"), ("avatar_url", "mxc://test.local/abc"),
                       ("m.tz", "Europe/London"), ("org.example.pets", {"cats": 2}),
                       ("org.example.flag", False)]:
        resp = await alice.request("PUT", profile(ALICE, key), {key: value})
        assert resp.status == 200 and resp.json == {}, resp
    assert (await alice.get(profile(ALICE))).json == {
        "displayname": "Alice", "avatar_url": "mxc://test.local/abc", "m.tz": "Europe/London",
        "org.example.pets": {"cats": 2}, "org.example.flag": False}
    assert (await alice.get(profile(ALICE, "org.example.pets"))).json == \
        {"org.example.pets": {"cats": 2}}
    # Replacing and deleting; deleting an unset key succeeds as well.
    await alice.request("PUT", profile(ALICE, "org.example.pets"), {"org.example.pets": []})
    assert (await alice.get(profile(ALICE, "org.example.pets"))).json == {"org.example.pets": []}
    for key in ("org.example.pets", "org.example.flag", "m.tz", "avatar_url", "org.example.none"):
        resp = await alice.request("DELETE", profile(ALICE, key))
        assert resp.status == 200 and resp.json == {}, resp
    assert (await alice.get(profile(ALICE, "m.tz"))).status == 404
    assert (await alice.get(profile(ALICE))).json == {"displayname": "Alice"}
    # A blank display name unsets it (as Synapse); a profile with nothing left is 404.
    assert (await alice.request("PUT", profile(ALICE, "displayname"),
                                {"displayname": "  "})).status == 200
    empty = await alice.get(profile(ALICE))
    assert empty.status == 404 and empty.json["errcode"] == "M_NOT_FOUND"
    await alice.request("PUT", profile(ALICE, "displayname"), {"displayname": " Al "})
    assert (await alice.get(profile(ALICE))).json == {"displayname": "Al"}


async def test_write_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    await user(homeserver, "bob")

    async def put(path: str, body: Any, **kw: Any) -> tuple[int, str | None]:
        resp = await alice.request("PUT", path, body, **kw)
        return resp.status, resp.json.get("errcode")

    assert await put(profile(BOB, "displayname"), {"displayname": "x"}) == (403, "M_FORBIDDEN")
    assert (await alice.request("DELETE", profile(BOB, "displayname"))).status == 403
    assert await put(profile(ALICE, "Bad.Key"), {"Bad.Key": 1}) == (400, "M_INVALID_PARAM")
    assert await put(profile(ALICE, "1abc"), {"1abc": 1}) == (400, "M_INVALID_PARAM")
    long_key = "org." + "k" * 252
    assert await put(profile(ALICE, long_key), {long_key: 1}) == (400, "M_KEY_TOO_LARGE")
    assert (await alice.get(profile(ALICE, long_key))).json["errcode"] == "M_KEY_TOO_LARGE"
    assert (await alice.request("DELETE", profile(ALICE, long_key))).status == 400
    assert await put(profile(ALICE, "displayname"), {"avatar_url": "x"}) == \
        (400, "M_MISSING_PARAM")
    assert await put(profile(ALICE, "org.example.x"), {"org.example.x": None}) == \
        (400, "M_INVALID_PARAM")
    assert await put(profile(ALICE, "displayname"), {"displayname": 5}) == \
        (400, "M_INVALID_PARAM")
    assert await put(profile(ALICE, "displayname"), {"displayname": "x" * 257}) == \
        (400, "M_INVALID_PARAM")
    assert await put(profile(ALICE, "avatar_url"), {"avatar_url": ["mxc://a/b"]}) == \
        (400, "M_INVALID_PARAM")
    assert await put(profile(ALICE, "m.tz"), {"m.tz": 1}) == (400, "M_INVALID_PARAM")
    assert await put(profile(ALICE, "displayname"), [1]) == (400, "M_BAD_JSON")
    status, _ = await put(profile(ALICE, "displayname"), {"displayname": "x"}, token="nope")
    assert status == 401
    assert await put(profile("not-a-user", "displayname"), {"displayname": "x"}) == \
        (400, "M_INVALID_PARAM")
    # Nothing above changed the profile.
    assert (await alice.get(profile(ALICE))).json == {"displayname": "alice"}


async def test_total_size_limit(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    big = "x" * 40_000
    assert (await alice.request("PUT", profile(ALICE, "org.example.a"),
                                {"org.example.a": big})).status == 200
    resp = await alice.request("PUT", profile(ALICE, "org.example.b"), {"org.example.b": big})
    assert resp.status == 400 and resp.json["errcode"] == "M_PROFILE_TOO_LARGE"
    # Replacing a field counts its new size, not old + new.
    assert (await alice.request("PUT", profile(ALICE, "org.example.a"),
                                {"org.example.a": big + "y"})).status == 200
    # Just under 64 KiB in total is fine; exactly 64 KiB is not ("MUST be under 64 KiB").
    base = len('{"displayname":"alice","org.example.a":""}')
    fill = "z" * (65536 - base - 1)
    assert (await alice.request("PUT", profile(ALICE, "org.example.a"),
                                {"org.example.a": fill})).status == 200
    resp = await alice.request("PUT", profile(ALICE, "org.example.a"),
                               {"org.example.a": fill + "z"})
    assert resp.json["errcode"] == "M_PROFILE_TOO_LARGE"
    assert (await alice.get(profile(ALICE, "org.example.a"))).json == {"org.example.a": fill}


async def test_read_errors(homeserver: RunningServer) -> None:
    client = homeserver.client
    for path in (profile("@nobody:test.local"), profile("@nobody:test.local", "displayname")):
        resp = await client.get(path)
        assert resp.status == 404 and resp.json["errcode"] == "M_NOT_FOUND", path
    # A server that cannot be reached: 502, as Synapse answers (profiles of reachable servers
    # are tested in tests/federation).
    for path in (profile("@alice:elsewhere.invalid"),
                 profile("@alice:elsewhere.invalid", "displayname")):
        resp = await client.get(path)
        assert resp.status == 502 and resp.json["errcode"] == "M_UNKNOWN", path
    bad = await client.get(profile("alice"))
    assert bad.status == 400 and bad.json["errcode"] == "M_INVALID_PARAM"
    await user(homeserver, "alice")
    bad_key = await client.get(profile(ALICE, "Nope"))
    assert bad_key.status == 400 and bad_key.json["errcode"] == "M_INVALID_PARAM"


async def test_guests_may_only_set_a_display_name(start_server: ServerFactory) -> None:
    server = await start_server(registration={"allow_guests": True})
    registered = await server.client.post(f"{V3}/register?kind=guest", {})
    guest = Client(server.url, server.client.session)
    guest.token = registered.json["access_token"]
    guest_id = registered.json["user_id"]
    assert (await guest.request("PUT", profile(guest_id, "displayname"),
                                {"displayname": "Visitor"})).status == 200
    assert (await guest.get(profile(guest_id))).json == {"displayname": "Visitor"}
    for key, value in (("avatar_url", "mxc://test.local/a"), ("org.example.x", 1)):
        resp = await guest.request("PUT", profile(guest_id, key), {key: value})
        assert resp.status == 403 and resp.json["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    resp = await guest.request("DELETE", profile(guest_id, "avatar_url"))
    assert resp.json["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"


async def test_changes_reach_every_joined_room(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    first = await create_room(alice, preset="public_chat")
    second = await create_room(bob, preset="public_chat")
    left = await create_room(bob, preset="public_chat")
    for room in (second, left):
        assert (await alice.post(f"{V3}/join/{room}", {"reason": "hello"})).status == 200
    assert (await alice.post(f"{V3}/rooms/{left}/leave", {})).status == 200

    await alice.request("PUT", profile(ALICE, "displayname"), {"displayname": "Alice"})
    await alice.request("PUT", profile(ALICE, "avatar_url"), {"avatar_url": "mxc://t/a"})
    for room in (first, second):
        content = await member_event(alice, room, ALICE)
        assert content["membership"] == "join"
        assert content["displayname"] == "Alice" and content["avatar_url"] == "mxc://t/a"
        assert "reason" not in content  # described the join, not this update
    assert (await member_event(bob, left, ALICE))["membership"] == "leave"

    # Custom fields stay out of rooms; an unchanged name sends nothing; removal propagates.
    before = (await bob.get(f"{V3}/rooms/{second}/messages?dir=b&limit=50")).json["chunk"]
    await alice.request("PUT", profile(ALICE, "org.example.x"), {"org.example.x": 1})
    await alice.request("PUT", profile(ALICE, "displayname"), {"displayname": "Alice"})
    after = (await bob.get(f"{V3}/rooms/{second}/messages?dir=b&limit=50")).json["chunk"]
    assert len(after) == len(before)
    await alice.request("DELETE", profile(ALICE, "avatar_url"))
    content = await member_event(bob, second, ALICE)
    assert "avatar_url" not in content and content["displayname"] == "Alice"


async def test_a_refusing_room_is_skipped(homeserver: RunningServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    alice = await user(homeserver, "alice")
    broken = await create_room(alice)
    fine = await create_room(alice)
    timeline = homeserver.services.timeline
    real_append = timeline.append

    async def append(room_id: str, *args: Any, **kwargs: Any) -> Any:
        if room_id == broken:
            raise RuntimeError("this room refuses")
        return await real_append(room_id, *args, **kwargs)

    monkeypatch.setattr(timeline, "append", append)
    resp = await alice.request("PUT", profile(ALICE, "displayname"), {"displayname": "Al"})
    assert resp.status == 200
    assert (await member_event(alice, fine, ALICE))["displayname"] == "Al"
    assert (await member_event(alice, broken, ALICE)).get("displayname") != "Al"
    assert (await alice.get(profile(ALICE))).json == {"displayname": "Al"}


async def test_member_content(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    profiles = homeserver.services.profiles
    assert await profiles.member_content(ALICE) == {"displayname": "alice"}
    await alice.request("PUT", profile(ALICE, "avatar_url"), {"avatar_url": "mxc://t/a"})
    await alice.request("PUT", profile(ALICE, "org.example.x"), {"org.example.x": 1})
    assert await profiles.member_content(ALICE) == \
        {"displayname": "alice", "avatar_url": "mxc://t/a"}
    assert await profiles.member_content("@nobody:test.local") == {}
    assert await profiles.member_content("@alice:elsewhere.example") == {}
    assert await profiles.member_content("garbage") == {}
