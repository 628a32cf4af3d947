"""Relation rows written with each event, and the relation queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson

from myelin.core.room_versions import V10
from myelin.storage.database import Database
from myelin.storage.migrations import load_migrations, migrate
from myelin.storage.persistence import NewRoom, PersistEvent, persist_event
from myelin.storage.stores.relations import Relation, RelationStore, relation_of

from event_builders import make_event

ROOM = "!room:example.org"
NEWEST = (2**62, 2**62)


class Room:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.n = 0

    async def add(self, event_id: str, content: dict[str, Any] | None = None, *,
                  sender: str = "@a:x", type: str = "m.room.message",
                  state_key: str | None = None, depth: int | None = None,
                  outlier: bool = False, redacts: str | None = None) -> None:
        self.n += 1
        extra = {"redacts": redacts} if redacts else {}
        pdu = make_event(V10, event_id, type, sender, content or {}, state_key=state_key,
                         depth=depth if depth is not None else self.n,
                         origin_server_ts=1000 + self.n, **extra)
        await persist_event(self.db, PersistEvent(
            pdu, stream_ordering=self.n, outlier=outlier,
            new_room=NewRoom(ROOM, "10", "@a:x", 1) if self.n == 1 else None,
            applies_redaction=redacts is not None))


def rel(rel_type: str, parent: str, **more: Any) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": rel_type, "event_id": parent, **more}}


def test_relation_of() -> None:
    assert relation_of(rel("m.thread", "$p")) == Relation("m.thread", "$p")
    assert relation_of(rel("m.annotation", "$p", key="👍")) == Relation("m.annotation", "$p",
                                                                          "👍")
    assert relation_of({"m.relates_to": {"m.in_reply_to": {"event_id": "$p"}}}) is None
    assert relation_of({"m.relates_to": {"rel_type": 1, "event_id": "$p"}}) is None
    assert relation_of({"m.relates_to": "nope"}) is None
    assert relation_of({}) is None


async def test_children_pagination_and_recursion(db: Database) -> None:
    room, store = Room(db), RelationStore(db)
    await room.add("$create", type="m.room.create", state_key="")
    await room.add("$root")
    for i in range(4):
        await room.add(f"$t{i}", rel("m.thread", "$root"))
    await room.add("$ref", rel("m.reference", "$t3"))
    await room.add("$ann", rel("m.annotation", "$ref", key="x"), type="m.reaction")
    await room.add("$deep", rel("m.reference", "$ann"))
    await room.add("$bad", {"m.relates_to": {"rel_type": "m.thread"}})
    await room.add("$outlier", rel("m.thread", "$root"), outlier=True)

    async def ids(**kw: Any) -> list[str]:
        args: dict[str, Any] = {"rel_type": None, "event_type": None, "levels": 1,
                                "position": NEWEST, "backwards": True, "limit": 50}
        args.update(kw)
        return [r[0] for r in await store.children("$root", ROOM, **args)]

    assert await ids() == ["$t3", "$t2", "$t1", "$t0"]
    assert await ids(backwards=False, position=(0, 0)) == ["$t0", "$t1", "$t2", "$t3"]
    assert await ids(limit=2) == ["$t3", "$t2"]
    depth_t2 = 5  # $t2 is the 5th event
    assert await ids(position=(depth_t2, depth_t2 - 1)) == ["$t1", "$t0"]
    assert await ids(levels=3) == ["$ann", "$ref", "$t3", "$t2", "$t1", "$t0"]
    assert await ids(levels=4) == ["$deep", "$ann", "$ref", "$t3", "$t2", "$t1", "$t0"]
    assert await ids(levels=3, rel_type="m.reference") == ["$ref"]
    assert await ids(levels=3, event_type="m.reaction") == ["$ann"]
    assert await ids(rel_type="m.reference") == []
    assert not await store.has_relation("$bad") and await store.has_relation("$ref")
    assert await store.has_annotation("$ref", "@a:x", "m.reaction", "x")
    assert not await store.has_annotation("$ref", "@b:x", "m.reaction", "x")
    # A redacted child no longer relates, nor does what hangs off it.
    await room.add("$redact", type="m.room.redaction", redacts="$ref")
    assert await ids(levels=3) == ["$t3", "$t2", "$t1", "$t0"]
    assert not await store.has_relation("$ref")


async def test_threads_follow_latest_activity(db: Database) -> None:
    room, store = Room(db), RelationStore(db)
    await room.add("$create", type="m.room.create", state_key="")
    await room.add("$a")
    await room.add("$b", sender="@b:x")
    await room.add("$a1", rel("m.thread", "$a"), sender="@b:x")
    await room.add("$b1", rel("m.thread", "$b"))
    await room.add("$a2", rel("m.thread", "$a"))
    await room.add("$late", rel("m.thread", "$b"), depth=1)  # older topologically: not latest
    await room.add("$c", rel("m.reference", "$a"))
    await room.add("$c1", rel("m.thread", "$c"))  # $c relates to $a: no thread root

    async def listing(participant: str | None = None) -> list[str]:
        return [r[0] for r in await store.threads(ROOM, NEWEST, 10, participant=participant)]

    assert await listing() == ["$a", "$b"]
    assert await listing("@b:x") == ["$a", "$b"]  # replied to $a, started $b
    assert await listing("@z:x") == []
    rows = await store.threads(ROOM, NEWEST, 1)
    assert [r[0] for r in rows] == ["$a"]
    assert [r[0] for r in await store.threads(ROOM, (rows[0][1], rows[0][2] - 1), 5)] == ["$b"]
    assert await store.thread_summaries(["$a", "$b", "$c", "$nope"]) == {
        "$a": (2, "$a2"), "$b": (2, "$b1"), "$c": (1, "$c1")}
    assert await store.participated(["$a", "$b"], "@b:x") == {"$a"}
    assert await store.thread_events("$a", ROOM, 5) == ["$a2", "$a1"]

    await room.add("$r1", type="m.room.redaction", redacts="$a2")
    assert await store.thread_summaries(["$a"]) == {"$a": (1, "$a1")}
    assert await listing() == ["$b", "$a"]
    await room.add("$r2", type="m.room.redaction", redacts="$a1")
    assert await store.thread_summaries(["$a"]) == {}
    assert await listing() == ["$b"]
    assert await listing("@b:x") == ["$b"]


async def test_edit_candidates_and_references(db: Database) -> None:
    room, store = Room(db), RelationStore(db)
    await room.add("$create", type="m.room.create", state_key="")
    await room.add("$orig", {"body": "x"})
    new = {"m.new_content": {"body": "y"}}
    await room.add("$e1", {**new, **rel("m.replace", "$orig")})
    await room.add("$e2", {**new, **rel("m.replace", "$orig")})
    await room.add("$other_sender", {**new, **rel("m.replace", "$orig")}, sender="@b:x")
    await room.add("$other_type", {**new, **rel("m.replace", "$orig")}, type="m.sticker")
    await room.add("$state", {**new, **rel("m.replace", "$orig")}, state_key="")
    await room.add("$edit_of_edit", {**new, **rel("m.replace", "$e2")})
    await room.add("$ref1", rel("m.reference", "$orig"))
    await room.add("$ref2", rel("m.reference", "$orig"), sender="@b:x")
    assert await store.edit_candidates(["$orig", "$e2"]) == [("$orig", "$e2"),
                                                             ("$orig", "$e1")]
    assert await store.references(["$orig"]) == [("$orig", "$ref1"), ("$orig", "$ref2")]
    await room.add("$r", type="m.room.redaction", redacts="$e2")
    assert await store.edit_candidates(["$orig"]) == [("$orig", "$e1")]


async def test_migration_indexes_existing_events(empty_db: Database) -> None:
    """Events stored before the relations migration get their rows when it runs."""
    shipped = load_migrations()
    (number,) = [m.number for m in shipped if m.name == "relations"]
    await migrate(empty_db, migrations=[m for m in shipped if m.number < number])
    await empty_db.execute("INSERT INTO rooms (room_id, room_version, creator, created_ts)"
                           " VALUES ($1, '10', '@a:x', 1)", ROOM)
    rows = [
        ("$root", {"body": "root"}),
        ("$t1", rel("m.thread", "$root")),
        ("$t2", rel("m.thread", "$root")),
        ("$t3", rel("m.thread", "$root")),  # redacted below: $t2 stays the latest
        ("$like", rel("m.annotation", "$root", key="👍")),
        ("$nul", {"body": "\u0000", **rel("m.reference", "$root")}),  # skipped on PostgreSQL
        ("$broken", {"m.relates_to": {"rel_type": "m.reference", "event_id": 5}}),
        ("$list", {"m.relates_to": ["m.thread", "$root"]}),
    ]
    for n, (event_id, content) in enumerate(rows, start=1):
        pdu = make_event(V10, event_id, "m.room.message", "@a:x", content, depth=n)
        await empty_db.execute(
            "INSERT INTO events (event_id, room_id, stream_ordering, depth, type, sender,"
            " origin_server_ts, json) VALUES ($1, $2, $3, $4, 'm.room.message', '@a:x', 1, $5)",
            event_id, ROOM, n, n, orjson.dumps(pdu.data).decode())
    await empty_db.execute("INSERT INTO redactions (redacts, event_id) VALUES ('$t3', '$r')")
    await migrate(empty_db)
    found = {r["event_id"]: (r["rel_type"], r["relates_to_id"], r["aggregation_key"])
             for r in await empty_db.fetch("SELECT * FROM event_relations")}
    expected = {"$t1": ("m.thread", "$root", None), "$t2": ("m.thread", "$root", None),
                "$t3": ("m.thread", "$root", None), "$like": ("m.annotation", "$root", "👍")}
    if empty_db.engine == "sqlite":
        expected["$nul"] = ("m.reference", "$root", None)
    assert found == expected
    assert await RelationStore(empty_db).thread_summaries(["$root"]) == {"$root": (2, "$t2")}
