"""createRoom, sending any event type, state, membership — over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"



async def create(client: Client, **body: Any) -> str:
    resp = await client.post(f"{V3}/createRoom", body)
    assert resp.status == 200, resp
    return str(resp.json["room_id"])


async def test_create_room_defaults_to_v12(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create(alice, name="Pub", topic="Happy hour")
    assert room_id.startswith("!") and ":" not in room_id  # v12: hash of the create event
    create_event = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.create")).json
    assert create_event["room_version"] == "12" and "creator" not in create_event
    assert (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.name/")).json == {"name": "Pub"}
    topic = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.topic")).json
    assert topic["topic"] == "Happy hour"
    levels = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.power_levels")).json
    assert "@alice:test.local" not in levels["users"]  # v12 creators are implicit
    assert levels["events"]["m.room.tombstone"] > levels["state_default"]
    joined = (await alice.get(f"{V3}/joined_rooms")).json["joined_rooms"]
    assert joined == [room_id]
    state = (await alice.get(f"{V3}/rooms/{room_id}/state")).json
    types = {e["type"] for e in state}
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules",
            "m.room.history_visibility", "m.room.guest_access", "m.room.name",
            "m.room.topic"} <= types
    join_rule = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.join_rules")).json
    assert join_rule == {"join_rule": "invite"}


async def test_create_room_older_versions_and_presets(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    for version in ("1", "3", "10", "11"):
        room_id = await create(alice, room_version=version, preset="public_chat",
                               initial_state=[{"type": "m.room.topic",
                                               "content": {"topic": "from initial_state"}}])
        assert room_id.endswith(":test.local")
        create_event = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.create")).json
        assert create_event["room_version"] == version
        assert ("creator" in create_event) == (version != "11")
        rule = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.join_rules")).json
        assert rule == {"join_rule": "public"}
        topic = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.topic")).json
        assert topic == {"topic": "from initial_state"}
        levels = (await alice.get(f"{V3}/rooms/{room_id}/state/m.room.power_levels")).json
        assert levels["users"] == {"@alice:test.local": 100}


async def test_create_room_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bad_version = await alice.post(f"{V3}/createRoom", {"room_version": "99"})
    assert bad_version.status == 400 and bad_version.json["errcode"] == \
        "M_UNSUPPORTED_ROOM_VERSION"
    bad_preset = await alice.post(f"{V3}/createRoom", {"preset": "party"})
    assert bad_preset.status == 400 and bad_preset.json["errcode"] == "M_INVALID_PARAM"
    bad_shape = await alice.post(f"{V3}/createRoom", {"invite": "@b:x"})
    assert bad_shape.status == 400 and bad_shape.json["errcode"] == "M_BAD_JSON"
    await create(alice, room_alias_name="pub")
    taken = await alice.post(f"{V3}/createRoom", {"room_alias_name": "pub"})
    assert taken.status == 400 and taken.json["errcode"] == "M_ROOM_IN_USE"
    bad_alias = await alice.post(f"{V3}/createRoom", {"room_alias_name": "a b"})
    assert bad_alias.status == 400
    anonymous = await homeserver.client.post(f"{V3}/createRoom", {}, token="")
    assert anonymous.status == 401


async def test_send_any_event_type_untouched(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create(alice)
    midi = {"note": "71", "velocity": 68, "state": "on", "channel": 1, "midi ts": 374023441}
    call = {"version": 0, "call_id": "12345",
            "offer": {"type": "offer", "sdp": "v=0\r\no=- 658458 2 IN IP4 127.0.0.1..."}}
    for event_type, content in (("m.room.message", {"msgtype": "m.text", "body": "hello"}),
                                ("org.matrix.midi", midi), ("m.call.invite", call)):
        resp = await alice.request("PUT", f"{V3}/rooms/{room_id}/send/{event_type}/t-{event_type}",
                                   content)
        assert resp.status == 200, resp
        event_id = resp.json["event_id"]
        got = await alice.get(f"{V3}/rooms/{room_id}/event/{event_id}")
        assert got.status == 200
        assert got.json["content"] == content and got.json["type"] == event_type
        assert got.json["sender"] == "@alice:test.local" and got.json["room_id"] == room_id


async def test_transaction_ids_are_idempotent_per_device(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create(alice)
    path = f"{V3}/rooms/{room_id}/send/m.room.message/txn1"
    first = await alice.request("PUT", path, {"body": "once"})
    again = await alice.request("PUT", path, {"body": "once"})
    assert first.status == again.status == 200
    assert first.json == again.json
    racing = await asyncio.gather(*(alice.request("PUT", f"{V3}/rooms/{room_id}/send/"
                                                  f"m.room.message/race", {"body": "x"})
                                    for _ in range(5)))
    assert len({r.json["event_id"] for r in racing}) == 1
    other_device = Client(homeserver.url, homeserver.client.session)
    await other_device.login("alice", "pw")
    third = await other_device.request("PUT", path, {"body": "once"})
    assert third.json["event_id"] != first.json["event_id"]


async def test_send_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await create(alice)
    outsider = await bob.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/t",
                                 {"body": "hi"})
    assert outsider.status == 403 and outsider.json["errcode"] == "M_FORBIDDEN"
    unknown = await bob.request("PUT", f"{V3}/rooms/!nope:test.local/send/m.room.message/t",
                                {"body": "hi"})
    assert unknown.status == 403
    big = await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/big",
                              {"body": "x" * 70000})
    assert big.status == 413 and big.json["errcode"] == "M_TOO_LARGE"
    floats = await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/f",
                                 {"body": "x", "n": 1.5})
    assert floats.status == 400 and floats.json["errcode"] == "M_BAD_JSON"
    not_object = await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/l",
                                     [1, 2])
    assert not_object.status == 400 and not_object.json["errcode"] == "M_BAD_JSON"
    read = await bob.get(f"{V3}/rooms/{room_id}/state")
    assert read.status == 403
    missing = await alice.get(f"{V3}/rooms/{room_id}/state/m.room.avatar")
    assert missing.status == 404 and missing.json["errcode"] == "M_NOT_FOUND"
    no_event = await alice.get(f"{V3}/rooms/{room_id}/event/$nope")
    assert no_event.status == 404


async def test_membership_flow(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await create(alice)
    denied = await bob.post(f"{V3}/rooms/{room_id}/join", {})
    assert denied.status == 403  # invite-only room
    assert (await alice.post(f"{V3}/rooms/{room_id}/invite",
                             {"user_id": "@bob:test.local"})).status == 200
    assert (await bob.post(f"{V3}/join/{room_id}", {})).json == {"room_id": room_id}
    joined = (await alice.get(f"{V3}/rooms/{room_id}/joined_members")).json["joined"]
    assert set(joined) == {"@alice:test.local", "@bob:test.local"}
    sent = await bob.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/1", {"b": 1})
    assert sent.status == 200
    # Bob (power 0) may not kick or change power levels.
    assert (await bob.post(f"{V3}/rooms/{room_id}/kick",
                           {"user_id": "@alice:test.local"})).status == 403
    assert (await bob.request("PUT", f"{V3}/rooms/{room_id}/state/m.room.power_levels",
                              {"users": {"@bob:test.local": 100}})).status == 403
    assert (await alice.post(f"{V3}/rooms/{room_id}/kick",
                             {"user_id": "@bob:test.local", "reason": "bye"})).status == 200
    after = await bob.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/2", {"b": 2})
    assert after.status == 403
    assert (await alice.post(f"{V3}/rooms/{room_id}/ban",
                             {"user_id": "@bob:test.local"})).status == 200
    members = (await alice.get(f"{V3}/rooms/{room_id}/members?membership=ban")).json["chunk"]
    assert [m["state_key"] for m in members] == ["@bob:test.local"]
    assert (await alice.post(f"{V3}/rooms/{room_id}/invite",
                             {"user_id": "@bob:test.local"})).status == 403  # banned
    assert (await alice.post(f"{V3}/rooms/{room_id}/unban",
                             {"user_id": "@bob:test.local"})).status == 200
    not_banned = await alice.post(f"{V3}/rooms/{room_id}/unban",
                                  {"user_id": "@bob:test.local"})
    assert not_banned.status == 400 and not_banned.json["errcode"] == "M_BAD_STATE"
    assert (await alice.post(f"{V3}/rooms/{room_id}/leave", {})).status == 200
    assert (await alice.get(f"{V3}/joined_rooms")).json["joined_rooms"] == []
    twice = await alice.post(f"{V3}/rooms/{room_id}/leave", {})
    assert twice.status == 403


async def test_public_room_join_by_alias(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await create(alice, preset="public_chat", room_alias_name="lobby")
    resp = await bob.post(f"{V3}/join/%23lobby:test.local", {})
    assert resp.status == 200 and resp.json["room_id"] == room_id
    again = await bob.post(f"{V3}/join/%23lobby:test.local", {})
    assert again.status == 200  # joining twice is harmless
    unknown = await bob.post(f"{V3}/join/%23nope:test.local", {})
    assert unknown.status == 404


async def test_state_put_get_with_slash_in_state_key(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create(alice)
    key = "a/b c"
    put = await alice.request("PUT", f"{V3}/rooms/{room_id}/state/org.example.thing/a%2Fb%20c",
                              {"v": 1})
    assert put.status == 200
    got = await alice.get(f"{V3}/rooms/{room_id}/state/org.example.thing/a%2Fb%20c")
    assert got.json == {"v": 1}
    full = await alice.get(f"{V3}/rooms/{room_id}/state/org.example.thing/a%2Fb%20c"
                           "?format=event")
    assert full.json["state_key"] == key and full.json["event_id"] == put.json["event_id"]


async def test_rooms_and_transaction_ids_survive_restart(tmp_path, http_session) -> None:
    """The same txn ID after a restart returns the same event; rooms reload from storage."""
    from myelin.server import Homeserver

    from conftest import create_postgres_database, postgres_test_dsn
    from harness import test_config

    dsn, drop = (await create_postgres_database()) if postgres_test_dsn() else (None, None)
    config = test_config(tmp_path, postgres_dsn=dsn)
    first = Homeserver(config)
    await first.start()
    try:
        running = RunningServer(first, Client(f"http://127.0.0.1:{first.port}", http_session))
        alice = await user(running, "alice")
        room_id = await create(alice, name="Persistent")
        path = f"{V3}/rooms/{room_id}/send/m.room.message/restart-txn"
        before = (await alice.request("PUT", path, {"body": "once"})).json["event_id"]
        token = alice.token
    finally:
        await first.stop()
    second = Homeserver(config)
    await second.start()
    try:
        client = Client(f"http://127.0.0.1:{second.port}", http_session)
        client.token = token
        after = await client.request("PUT", path, {"body": "once"})
        assert after.json["event_id"] == before
        more = await client.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/new",
                                    {"body": "after restart"})
        assert more.status == 200 and more.json["event_id"] != before
        name = await client.get(f"{V3}/rooms/{room_id}/state/m.room.name")
        assert name.json == {"name": "Persistent"}
    finally:
        await second.stop()
        if drop is not None:
            await drop()


async def test_membership_events_carry_the_profile(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    await bob.request("PUT", f"{V3}/profile/@bob:test.local/displayname", {"displayname": "Bob!"})
    room_id = await create(alice, preset="public_chat", invite=["@bob:test.local"])
    creator = await alice.get(f"{V3}/rooms/{room_id}/state/m.room.member/@alice:test.local")
    assert creator.json == {"membership": "join", "displayname": "alice"}  # default: localpart
    invite = await alice.get(f"{V3}/rooms/{room_id}/state/m.room.member/@bob:test.local")
    assert invite.json["displayname"] == "Bob!" and invite.json["membership"] == "invite"
    await bob.post(f"{V3}/join/{room_id}", {})
    joined = await alice.get(f"{V3}/rooms/{room_id}/joined_members")
    assert joined.json["joined"]["@bob:test.local"]["display_name"] == "Bob!"


async def test_identical_concurrent_create_requests_found_distinct_rooms(
        homeserver: RunningServer) -> None:
    # Room version 12 derives the room ID from the create event: identical requests in the
    # same millisecond must still get rooms of their own (this used to be a 500).
    alice = await user(homeserver, "alice")
    responses = await asyncio.gather(*[
        alice.post("/_matrix/client/v3/createRoom", {"preset": "private_chat"})
        for _ in range(8)])
    assert [r.status for r in responses] == [200] * 8
    assert len({r.json["room_id"] for r in responses}) == 8


async def test_former_members_read_the_state_as_they_left_it(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    created = await alice.post("/_matrix/client/v3/createRoom",
                               {"preset": "public_chat", "topic": "before"})
    room_id = created.json["room_id"]
    assert (await bob.post(f"/_matrix/client/v3/join/{room_id}", {})).status == 200
    assert (await bob.post(f"/_matrix/client/v3/rooms/{room_id}/leave", {})).status == 200
    await alice.request("PUT", f"/_matrix/client/v3/rooms/{room_id}/state/m.room.topic",
                        {"topic": "after"})
    topic = await bob.get(f"/_matrix/client/v3/rooms/{room_id}/state/m.room.topic")
    assert topic.status == 200 and topic.json["topic"] == "before"
    member = await bob.get(f"/_matrix/client/v3/rooms/{room_id}/state/m.room.member/"
                           f"{bob_id(homeserver)}")
    assert member.json["membership"] == "leave"
    full = await bob.get(f"/_matrix/client/v3/rooms/{room_id}/state")
    assert {e["content"].get("topic") for e in full.json if e["type"] == "m.room.topic"} \
        == {"before"}
    stranger = await user(homeserver, "carol")
    assert (await stranger.get(f"/_matrix/client/v3/rooms/{room_id}/state")).status == 403


def bob_id(server: RunningServer) -> str:
    return f"@bob:{server.services.config.server_name}"
