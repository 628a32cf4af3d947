"""POST /rooms/{roomId}/upgrade."""

from __future__ import annotations

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"



async def state(client: Client, room_id: str, event_type: str) -> dict:
    resp = await client.get(f"{V3}/rooms/{room_id}/state/{event_type}")
    return dict(resp.json) if resp.status == 200 else {}


async def test_upgrade_10_to_12_and_back(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    old = (await alice.post(f"{V3}/createRoom", {
        "room_version": "10", "preset": "public_chat", "visibility": "public",
        "name": "Old", "topic": "t",
        "room_alias_name": "hall", "creation_content": {"type": "m.space"},
        "power_level_content_override": {"users": {"@alice:test.local": 100,
                                                   "@bob:test.local": 10}}})).json["room_id"]
    await bob.post(f"{V3}/join/{old}", {})
    denied = await bob.post(f"{V3}/rooms/{old}/upgrade", {"new_version": "12"})
    assert denied.status == 403
    resp = await alice.post(f"{V3}/rooms/{old}/upgrade", {"new_version": "12"})
    assert resp.status == 200, resp
    new = resp.json["replacement_room"]

    create = await state(alice, new, "m.room.create")
    assert create["room_version"] == "12" and create["type"] == "m.space"
    assert create["predecessor"] == {"room_id": old}
    assert (await state(alice, new, "m.room.name")) == {"name": "Old"}
    assert (await state(alice, new, "m.room.join_rules")) == {"join_rule": "public"}
    levels = await state(alice, new, "m.room.power_levels")
    assert levels["users"] == {"@bob:test.local": 10}  # alice is a v12 creator: implicit
    tomb = await state(alice, old, "m.room.tombstone")
    assert tomb["replacement_room"] == new
    old_levels = await state(alice, old, "m.room.power_levels")
    assert old_levels["events_default"] == 50 and old_levels["invite"] == 50
    alias = await alice.get(f"{V3}/directory/room/%23hall:test.local")
    assert alias.json["room_id"] == new
    listed = (await alice.get(f"{V3}/publicRooms")).json["chunk"]
    assert [r["room_id"] for r in listed] == [new]
    assert (await state(alice, new, "m.room.canonical_alias"))["alias"] == "#hall:test.local"
    # Bob (power 10) can no longer talk in the old room.
    quiet = await bob.request("PUT", f"{V3}/rooms/{old}/send/m.room.message/1", {"b": 1})
    assert quiet.status == 403

    back = await alice.post(f"{V3}/rooms/{new}/upgrade", {"new_version": "11"})
    assert back.status == 200
    newest = back.json["replacement_room"]
    create = await state(alice, newest, "m.room.create")
    assert create["predecessor"]["room_id"] == new and "event_id" in create["predecessor"]
    levels = await state(alice, newest, "m.room.power_levels")
    assert levels["users"]["@alice:test.local"] == 100


async def test_upgrade_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    bad = await alice.post(f"{V3}/rooms/{room}/upgrade", {"new_version": "99"})
    assert bad.status == 400 and bad.json["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    extra = await alice.post(f"{V3}/rooms/{room}/upgrade",
                             {"new_version": "11", "additional_creators": ["@b:x"]})
    assert extra.status == 400
    unknown = await alice.post(f"{V3}/rooms/!nope:test.local/upgrade", {"new_version": "12"})
    assert unknown.status == 403
    ok = await alice.post(f"{V3}/rooms/{room}/upgrade",
                          {"new_version": "12", "additional_creators": ["@bob:test.local"]})
    assert ok.status == 200
    create = await state(alice, ok.json["replacement_room"], "m.room.create")
    assert create["additional_creators"] == ["@bob:test.local"]
