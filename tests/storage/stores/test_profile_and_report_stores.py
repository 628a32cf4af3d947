"""Profiles, the user directory's reads and content reports, on SQLite and PostgreSQL."""

from __future__ import annotations

import orjson

from myelin.storage.database import Database
from myelin.storage.stores.profiles import ProfileStore, StoredProfile
from myelin.storage.stores.reports import ReportStore


async def add_user(db: Database, user_id: str, deactivated: bool = False) -> None:
    await db.execute(
        "INSERT INTO users (user_id, created_ts, deactivated) VALUES ($1, 1, $2)",
        user_id, deactivated,
    )


async def join(db: Database, room_id: str, user_id: str, membership: str = "join") -> None:
    await db.execute(
        "INSERT INTO room_memberships (room_id, user_id, membership, event_id, stream_ordering)"
        " VALUES ($1, $2, $3, $4, 1)",
        room_id, user_id, membership, f"${room_id}{user_id}",
    )


async def add_state(db: Database, room_id: str, event_type: str, content: dict[str, str],
                    stream: int) -> None:
    event_id = f"${room_id}{stream}"
    await db.execute(
        "INSERT INTO events (event_id, room_id, stream_ordering, depth, type, state_key, sender,"
        " origin_server_ts, json) VALUES ($1, $2, $3, 1, $4, '', '@a:x', 1, $5)",
        event_id, room_id, stream, event_type,
        orjson.dumps({"type": event_type, "content": content}).decode(),
    )
    await db.execute(
        "INSERT INTO current_state (room_id, type, state_key, event_id) VALUES ($1, $2, '', $3)"
        " ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
        room_id, event_type, event_id,
    )


async def test_profiles(db: Database) -> None:
    store = ProfileStore(db)
    assert await store.get_local("@a:x") == (False, None)
    await add_user(db, "@a:x")
    assert await store.get_local("@a:x") == (True, None)
    first = StoredProfile("A", None, {"org.example.k": [1, {"n": None}]})
    await store.put("@a:x", first, "a")
    assert await store.get_local("@a:x") == (True, first)
    second = StoredProfile(None, "mxc://x/y", {})
    await store.put("@a:x", second, None)
    assert await store.get_local("@a:x") == (True, second)


async def test_room_publicity(db: Database) -> None:
    store = ProfileStore(db)
    await add_state(db, "!a:x", "m.room.join_rules", {"join_rule": "public"}, 1)
    await add_state(db, "!b:x", "m.room.history_visibility",
                    {"history_visibility": "world_readable"}, 2)
    await add_state(db, "!c:x", "m.room.join_rules", {"join_rule": "invite"}, 3)
    rows = sorted(await store.room_publicity())
    assert rows == [("!a:x", "m.room.join_rules", {"join_rule": "public"}),
                    ("!b:x", "m.room.history_visibility",
                     {"history_visibility": "world_readable"}),
                    ("!c:x", "m.room.join_rules", {"join_rule": "invite"})]
    assert [r[0] for r in await store.room_publicity(["!c:x", "!zz:x"])] == ["!c:x"]
    assert await store.rooms_with_publicity_events(1, 3) == {"!b:x", "!c:x"}
    assert await store.rooms_with_publicity_events(3, 3) == set()


async def test_directory_search(db: Database) -> None:
    store = ProfileStore(db)
    await add_user(db, "@alice:x")
    await add_user(db, "@bob_1:x")
    await add_user(db, "@gone:x", deactivated=True)
    await store.put("@alice:x", StoredProfile("Wonder 100%", None, {}), "wonder 100%")
    # 600 rooms: the room list is queried in chunks.
    rooms = [f"!r{i:03d}:x" for i in range(600)]
    await join(db, rooms[599], "@alice:x")
    await join(db, rooms[0], "@bob_1:x")
    await join(db, rooms[1], "@gone:x")
    await join(db, rooms[2], "@carol:remote", "leave")
    found = await store.search_room_members(rooms, ["o"], None)
    assert sorted((e.user_id, e.room_id) for e in found) == [
        ("@alice:x", rooms[599]), ("@bob_1:x", rooms[0])]
    assert [e.user_id for e in await store.search_room_members(rooms, ["100%"], None)] == \
        ["@alice:x"]
    assert await store.search_room_members(rooms, ["1%"], None) == []  # % is not a wildcard
    assert [e.user_id for e in await store.search_room_members(rooms, ["b_"], None)] == \
        ["@bob_1:x"]
    assert await store.search_room_members(rooms, ["bx"], None) == []  # _ is not a wildcard
    assert [e.user_id for e in await store.search_room_members(rooms, [], "@bob")] == \
        ["@bob_1:x"]
    everyone = await store.search_local_users([], None)
    assert sorted(e.user_id for e in everyone) == ["@alice:x", "@bob_1:x"]
    alice = (await store.search_local_users(["wonder"], None))[0]
    assert alice.profile == StoredProfile("Wonder 100%", None, {}) and alice.room_id is None


async def test_reports(db: Database) -> None:
    store = ReportStore(db)
    await store.add("event", "@a:x", room_id="!r:x", event_id="$e", reason="r", score=-5,
                    content={"reason": "r", "score": -5}, received_ts=10)
    await store.add("user", "@a:x", target_user="@b:x", reason=None, content={},
                    received_ts=11)
    newest, oldest = await store.recent()
    assert (newest.kind, newest.target_user, newest.reason, newest.score) == \
        ("user", "@b:x", None, None)
    assert (oldest.kind, oldest.room_id, oldest.event_id, oldest.score, oldest.content) == \
        ("event", "!r:x", "$e", -5, {"reason": "r", "score": -5})
    assert [r.report_id for r in await store.recent(before_id=newest.report_id)] == \
        [oldest.report_id]
    assert len(await store.recent(limit=1)) == 1
