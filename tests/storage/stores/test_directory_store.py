"""The published room directory and alias lookups, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from myelin.storage.database import Database
from myelin.storage.stores.aliases import AliasExistsError, AliasStore
from myelin.storage.stores.directory import DirectoryStore


async def add_room(db: Database, room_id: str, members: dict[str, str]) -> None:
    await db.execute(
        "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES ($1, '12', $2, 1)",
        room_id, "@a:x",
    )
    for n, (user_id, membership) in enumerate(members.items()):
        await db.execute(
            "INSERT INTO room_memberships (room_id, user_id, membership, event_id,"
            " stream_ordering) VALUES ($1, $2, $3, $4, $5)",
            room_id, user_id, membership, f"${room_id}{n}", n,
        )


async def test_publishing_and_counts(db: Database) -> None:
    store = DirectoryStore(db)
    await add_room(db, "!a:x", {"@a:x": "join", "@b:y": "join", "@c:x": "leave"})
    await add_room(db, "!b:x", {"@a:x": "invite"})
    await add_room(db, "!c:x", {"@a:x": "join"})
    assert await store.is_public("!a:x") is False
    assert await store.is_public("!nope:x") is None
    assert await store.public_rooms() == {}
    assert await store.set_public("!a:x", True) and await store.set_public("!b:x", True)
    assert not await store.set_public("!nope:x", True)
    assert await store.is_public("!a:x") is True
    assert await store.public_rooms() == {"!a:x": 2, "!b:x": 0}
    assert await store.set_public("!a:x", False)
    assert await store.public_rooms() == {"!b:x": 0}
    assert sorted(await store.joined_members("!a:x")) == ["@a:x", "@b:y"]


async def test_directory_state_picks_only_listed_keys(db: Database) -> None:
    store = DirectoryStore(db)
    rows = [("m.room.name", "", "$name"), ("m.room.topic", "", "$topic"),
            ("m.room.member", "@a:x", "$member"), ("m.room.name", "other", "$odd"),
            ("m.room.create", "", "$create"), ("com.example", "", "$custom")]
    for event_type, state_key, event_id in rows:
        await db.execute(
            "INSERT INTO current_state (room_id, type, state_key, event_id)"
            " VALUES ($1, $2, $3, $4)",
            "!a:x", event_type, state_key, event_id,
        )
    assert await store.directory_state("!a:x") == {
        ("m.room.name", ""): "$name", ("m.room.topic", ""): "$topic",
        ("m.room.create", ""): "$create",
    }
    assert await store.directory_state("!other:x") == {}


async def test_alias_mapping(db: Database) -> None:
    aliases = AliasStore(db)
    await aliases.insert_alias("#a:x", "!a:x", "@u:x", 5)
    assert await aliases.get_alias("#a:x") == ("!a:x", "@u:x")
    assert await aliases.get_alias("#b:x") is None
    with pytest.raises(AliasExistsError):
        await aliases.insert_alias("#a:x", "!b:x", "@v:x", 6)
    assert await aliases.delete_alias("#a:x")
    assert await aliases.get_alias("#a:x") is None
