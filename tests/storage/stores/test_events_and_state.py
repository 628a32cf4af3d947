"""Event persistence, state snapshots and current state, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from myelin.core.room_versions import V10
from myelin.storage.database import Database, IntegrityError
from myelin.storage.persistence import (
    ClientTransaction,
    Membership,
    NewRoom,
    PersistEvent,
    persist_event,
)
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.state import MAX_CHAIN, StateStore

from event_builders import make_event

ROOM = "!room:example.org"


async def persist_state_event(db: Database, state: StateStore, n: int, group_prev: int | None,
                              event_id: str, key: tuple[str, str], extremities: list[str],
                              **kw) -> tuple[int, dict]:
    pdu = make_event(V10, event_id, key[0], "@a:x", {"n": n}, state_key=key[1],
                     prev_events=extremities, auth_events=extremities[:1])
    write = await state.plan_group(n, ROOM, group_prev, {key: event_id})
    await persist_event(db, PersistEvent(
        pdu, stream_ordering=n, state_group=n, new_state_group=write,
        current_state_changes={key: event_id}, extremities_replaced=extremities, **kw))
    return n, await state.get_state(n)


async def test_room_event_state_round_trip(db: Database) -> None:
    events, state = EventStore(db), StateStore(db)
    create = make_event(V10, "$create", "m.room.create", "@a:x", {"creator": "@a:x"},
                        state_key="")
    write = await state.plan_group(1, ROOM, None, {("m.room.create", ""): "$create"})
    await persist_event(db, PersistEvent(
        create, stream_ordering=1, state_group=1, new_state_group=write,
        current_state_changes={("m.room.create", ""): "$create"},
        new_room=NewRoom(ROOM, "10", "@a:x", 5)))
    join = make_event(V10, "$join", "m.room.member", "@a:x", {"membership": "join"},
                      state_key="@a:x", prev_events=["$create"], auth_events=["$create"])
    write2 = await state.plan_group(2, ROOM, 1, {("m.room.member", "@a:x"): "$join"})
    await persist_event(db, PersistEvent(
        join, stream_ordering=2, state_group=2, new_state_group=write2,
        current_state_changes={("m.room.member", "@a:x"): "$join"},
        membership_changes={"@a:x": Membership("join", "$join", 2)},
        extremities_replaced=["$create"],
        client_transaction=ClientTransaction("@a:x", "DEV", "send", "t1", b'{"event_id":"$join"}',
                                             7)))
    stored = await events.get_event("$join")
    assert stored is not None
    assert stored.pdu.data == join.data and stored.pdu.event_id == "$join"
    assert stored.pdu.room_version is V10 and stored.stream_ordering == 2
    assert await events.get_forward_extremities(ROOM) == ["$join"]
    assert await state.get_state(2) == {("m.room.create", ""): "$create",
                                        ("m.room.member", "@a:x"): "$join"}
    assert await state.get_current_state(ROOM) == await state.get_state(2)
    assert await state.list_rooms_for_user("@a:x", "join") == [ROOM]
    assert await state.get_membership(ROOM, "@a:x") == ("join", "$join")
    assert await events.get_client_transaction("@a:x", "DEV", "send", "t1") == \
        b'{"event_id":"$join"}'
    assert await events.get_client_transaction("@a:x", "OTHER", "send", "t1") is None
    assert set(await events.get_events(["$create", "$join", "$nope"])) == {"$create", "$join"}
    assert await events.get_room_version(ROOM) is V10
    assert await events.max_stream_ordering() == 2


async def test_failed_persist_leaves_nothing(db: Database) -> None:
    events, state = EventStore(db), StateStore(db)
    create = make_event(V10, "$create", "m.room.create", "@a:x", {}, state_key="")
    await persist_event(db, PersistEvent(create, stream_ordering=1,
                                         new_room=NewRoom(ROOM, "10", "@a:x", 1)))
    # Same stream ordering again: the event insert fails, so its state group must not stay.
    dup = make_event(V10, "$other", "m.room.topic", "@a:x", {}, state_key="")
    write = await state.plan_group(9, ROOM, None, {("m.room.topic", ""): "$other"})
    with pytest.raises(IntegrityError):
        await persist_event(db, PersistEvent(dup, stream_ordering=1, state_group=9,
                                             new_state_group=write))
    assert await events.get_event("$other") is None
    with pytest.raises(KeyError):
        await StateStore(db).get_state(9)


async def test_state_delta_chains_are_bounded(db: Database) -> None:
    state = StateStore(db)
    create = make_event(V10, "$e0", "m.room.create", "@a:x", {}, state_key="")
    write = await state.plan_group(0, ROOM, None, {("m.room.create", ""): "$e0"})
    await persist_event(db, PersistEvent(create, stream_ordering=100_000, state_group=0,
                                         new_state_group=write,
                                         new_room=NewRoom(ROOM, "10", "@a:x", 1)))
    prev, extremities = 0, ["$e0"]
    for n in range(1, MAX_CHAIN + 5):
        key = ("m.room.topic", "") if n % 2 else ("m.room.name", "")
        prev, _ = await persist_state_event(db, state, n, prev, f"$e{n}", key, extremities)
        extremities = [f"$e{n}"]
    chains = await db.fetch("SELECT group_id, chain_length, prev_group FROM state_groups"
                            " ORDER BY group_id")
    assert max(r["chain_length"] for r in chains) < MAX_CHAIN
    assert any(r["prev_group"] is None and r["group_id"] > 0 for r in chains)  # a new snapshot
    last = MAX_CHAIN + 4
    expected = {("m.room.create", ""): "$e0",
                ("m.room.topic", ""): f"$e{last if last % 2 else last - 1}",
                ("m.room.name", ""): f"$e{last if last % 2 == 0 else last - 1}"}
    assert await StateStore(db).get_state(last) == expected  # fresh cache: read from rows


async def test_state_removal_in_delta(db: Database) -> None:
    state = StateStore(db)
    create = make_event(V10, "$c", "m.room.create", "@a:x", {}, state_key="")
    w1 = await state.plan_group(1, ROOM, None, {("m.room.create", ""): "$c",
                                                ("m.room.topic", ""): "$t"})
    await persist_event(db, PersistEvent(create, stream_ordering=1, state_group=1,
                                         new_state_group=w1,
                                         new_room=NewRoom(ROOM, "10", "@a:x", 1)))
    msg = make_event(V10, "$m", "m.room.message", "@a:x", {}, prev_events=["$c"])
    w2 = await state.plan_group(2, ROOM, 1, {("m.room.topic", ""): None})
    await persist_event(db, PersistEvent(msg, stream_ordering=2, state_group=2,
                                         new_state_group=w2))
    assert await StateStore(db).get_state(2) == {("m.room.create", ""): "$c"}


def test_stream_positions_wait_for_slow_writers() -> None:
    positions = StreamPositions(10)
    a, b = positions.allocate(), positions.allocate()
    assert (a, b) == (11, 12) and positions.current == 10
    positions.finish(b)
    assert positions.current == 10  # 11 is still being written
    positions.finish(a)
    assert positions.current == 12


async def test_stream_positions_load(db: Database) -> None:
    assert (await StreamPositions.load(db, "events", "stream_ordering")).current == 0
