"""The Database contract, run identically on SQLite and (when configured) PostgreSQL.

Stores are written once against this contract, so every behaviour they rely on is pinned here on
both engines; the few intentional differences are asserted explicitly per engine.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from myelin.storage.database import Database, IntegrityError, Statement, connect_database
from myelin.storage.postgres import rowcount_from_status
from myelin.storage.sqlite import READER_CACHE_KIB, SqliteDatabase, rewrite_placeholders

KV = """
CREATE TABLE kv (
    k    TEXT PRIMARY KEY,
    v    BIGINT NOT NULL,
    flag BOOLEAN,
    data BYTEA
)
"""


@pytest.fixture
async def kv(db: Database) -> Database:
    assert await db.execute(KV) == 0
    return db


async def count(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM kv"))


async def test_crud_and_rowcounts(kv: Database) -> None:
    assert await kv.execute("INSERT INTO kv (k, v) VALUES ($1, $2)", "a", 1) == 1
    await kv.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("b", 2), ("c", 3), ("d", 4)])
    assert await kv.execute("UPDATE kv SET v = v + 10 WHERE v >= $1", 2) == 3
    assert await kv.execute("UPDATE kv SET v = 0 WHERE k = $1", "missing") == 0
    assert await kv.execute("DELETE FROM kv WHERE k IN ($1, $2)", "c", "d") == 2
    rows = await kv.fetch("SELECT k, v FROM kv ORDER BY k")
    assert [(r["k"], r["v"]) for r in rows] == [("a", 1), ("b", 12)]
    row = rows[1]
    assert row[0] == "b" and list(row.keys()) == ["k", "v"] and dict(row) == {"k": "b", "v": 12}


async def test_fetch_empty_results(kv: Database) -> None:
    assert await kv.fetch("SELECT k FROM kv") == []
    assert await kv.fetchrow("SELECT k FROM kv WHERE k = $1", "nope") is None
    assert await kv.fetchval("SELECT v FROM kv WHERE k = $1", "nope") is None
    await kv.execute("INSERT INTO kv (k, v) VALUES ('n', 1)")
    assert await kv.fetchval("SELECT flag FROM kv WHERE k = 'n'") is None  # NULL, not no-row


async def test_placeholders_reused_and_dollars_in_literals(kv: Database) -> None:
    await kv.execute("INSERT INTO kv (k, v) VALUES ($1 || '-$2-' || $1, $2)", "x", 7)
    assert await kv.fetchval("SELECT k FROM kv WHERE v = $1", 7) == "x-$2-x"


def test_rewrite_placeholders() -> None:
    sql = "SELECT '$1', \"$2\", $1, $12 -- $3\n/* $4 */ FROM t WHERE a = $2"
    assert rewrite_placeholders(sql) == (
        "SELECT '$1', \"$2\", ?1, ?12 -- $3\n/* $4 */ FROM t WHERE a = ?2"
    )
    assert rewrite_placeholders("SELECT 'it''s $1', $1") == "SELECT 'it''s $1', ?1"


def test_rowcount_from_status() -> None:
    assert rowcount_from_status("INSERT 0 1") == 1
    assert rowcount_from_status("UPDATE 3") == 3
    assert rowcount_from_status("DELETE 0") == 0
    assert rowcount_from_status("CREATE TABLE") == 0


async def test_type_round_trips(kv: Database) -> None:
    big, blob = 2**62, bytes(range(256))
    await kv.executemany(
        "INSERT INTO kv (k, v, flag, data) VALUES ($1, $2, $3, $4)",
        [("t", big, True, blob), ("f", -big, False, b""), ("n", 0, None, None)],
    )
    rows = {r["k"]: r for r in await kv.fetch("SELECT k, v, flag, data FROM kv")}
    assert rows["t"]["v"] == big and rows["f"]["v"] == -big
    assert rows["t"]["flag"] is True and rows["f"]["flag"] is False and rows["n"]["flag"] is None
    assert bytes(rows["t"]["data"]) == blob and bytes(rows["f"]["data"]) == b""
    assert await kv.fetchval("SELECT k FROM kv WHERE flag = $1", True) == "t"
    assert await kv.fetchval("SELECT 'héllo ✓'") == "héllo ✓"


async def test_transaction_commits(kv: Database) -> None:
    async with kv.transaction() as txn:
        assert await txn.execute("INSERT INTO kv (k, v) VALUES ('a', 1)") == 1
        assert await txn.fetchval("SELECT v FROM kv WHERE k = 'a'") == 1  # own writes visible
        await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("b", 2), ("c", 3)])
        assert len(await txn.fetch("SELECT k FROM kv")) == 3
        assert (await txn.fetchrow("SELECT v FROM kv WHERE k = 'c'"))["v"] == 3
    assert await count(kv) == 3


async def test_transaction_rolls_back_on_exception(kv: Database) -> None:
    await kv.execute("INSERT INTO kv (k, v) VALUES ('keep', 1)")
    with pytest.raises(ZeroDivisionError):
        async with kv.transaction() as txn:
            await txn.execute("INSERT INTO kv (k, v) VALUES ('gone', 2)")
            await txn.execute("UPDATE kv SET v = 99")
            1 / 0  # noqa: B018
    assert [tuple(r) for r in await kv.fetch("SELECT k, v FROM kv")] == [("keep", 1)]
    with pytest.raises(RuntimeError, match="after its 'async with' block"):
        await txn.execute("SELECT 1")


async def test_integrity_errors_are_mapped(db: Database) -> None:
    driver_error = sqlite3.IntegrityError if db.engine == "sqlite" else (
        asyncpg.IntegrityConstraintViolationError
    )
    insert_user = "INSERT INTO users (user_id, created_ts) VALUES ($1, $2)"
    await db.execute(insert_user, "@a:x", 1)
    for sql, args in [
        (insert_user, ("@a:x", 2)),  # unique
        (insert_user, ("@b:x", None)),  # not null
        ("INSERT INTO devices (user_id, device_id, created_ts) VALUES ($1, $2, $3)",
         ("@nobody:x", "D", 1)),  # foreign key
    ]:
        with pytest.raises(IntegrityError) as info:
            await db.execute(sql, *args)
        assert isinstance(info.value.__cause__, driver_error)
    assert await db.fetchval("SELECT created_ts FROM users") == 1


async def test_executemany_is_atomic(kv: Database) -> None:
    with pytest.raises(IntegrityError):
        await kv.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("a", 1), ("a", 2)])
    assert await count(kv) == 0
    async with kv.transaction() as txn:
        with pytest.raises(IntegrityError):
            await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("b", 1), ("b", 2)])
        if kv.engine == "sqlite":
            assert await txn.fetchval("SELECT COUNT(*) FROM kv") == 0


async def test_integrity_error_inside_transaction(kv: Database) -> None:
    """SQLite: the transaction survives. PostgreSQL: it is aborted (documented difference)."""
    await kv.execute("INSERT INTO kv (k, v) VALUES ('a', 1)")
    if kv.engine == "sqlite":
        async with kv.transaction() as txn:
            await txn.execute("INSERT INTO kv (k, v) VALUES ('b', 2)")
            with pytest.raises(IntegrityError):
                await txn.execute("INSERT INTO kv (k, v) VALUES ('a', 3)")
            await txn.execute("INSERT INTO kv (k, v) VALUES ('c', 4)")
        assert await count(kv) == 3
    else:
        with pytest.raises(asyncpg.InFailedSQLTransactionError):
            async with kv.transaction() as txn:
                await txn.execute("INSERT INTO kv (k, v) VALUES ('b', 2)")
                with pytest.raises(IntegrityError):
                    await txn.execute("INSERT INTO kv (k, v) VALUES ('a', 3)")
                await txn.execute("INSERT INTO kv (k, v) VALUES ('c', 4)")
        assert await count(kv) == 1


async def test_deferred_constraint_fails_at_commit(db: Database) -> None:
    await db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    await db.execute(
        "CREATE TABLE child (id INTEGER PRIMARY KEY,"
        " parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    with pytest.raises(IntegrityError):
        async with db.transaction() as txn:
            await txn.execute("INSERT INTO child (id, parent_id) VALUES (1, 42)")
    async with db.transaction() as txn:  # the orphan is fine once its parent exists
        await txn.execute("INSERT INTO child (id, parent_id) VALUES (1, 42)")
        await txn.execute("INSERT INTO parent (id) VALUES (42)")
    assert await db.fetchval("SELECT parent_id FROM child") == 42


async def test_returning_and_upsert(kv: Database) -> None:
    upsert = (
        "INSERT INTO kv (k, v) VALUES ($1, $2) "
        "ON CONFLICT (k) DO UPDATE SET v = kv.v + excluded.v RETURNING v"
    )
    async with kv.transaction() as txn:
        assert await txn.fetchval(upsert, "a", 1) == 1
        assert await txn.fetchval(upsert, "a", 2) == 3
        rows = await txn.fetch("UPDATE kv SET v = v * 10 RETURNING k, v")
        assert [tuple(r) for r in rows] == [("a", 30)]
    assert await kv.execute(upsert, "a", 5) == 1  # RETURNING rows are drained, count is right
    assert await kv.execute(
        "INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING", "a", 0
    ) == 0
    assert await kv.fetchval("SELECT v FROM kv WHERE k = 'a'") == 35


async def test_concurrent_writes_all_land(kv: Database) -> None:
    before = (kv.commit_count, kv.write_job_count) if isinstance(kv, SqliteDatabase) else None

    async def transfer(i: int) -> None:
        async with kv.transaction() as txn:
            await txn.execute("INSERT INTO kv (k, v) VALUES ($1, $2)", f"t{i}", i)
            await txn.execute("UPDATE kv SET v = v + 1 WHERE k = $1", f"t{i}")

    await asyncio.gather(
        *(kv.execute("INSERT INTO kv (k, v) VALUES ($1, $2)", f"e{i}", i) for i in range(200)),
        *(transfer(i) for i in range(50)),
    )
    assert await count(kv) == 250
    assert await kv.fetchval("SELECT SUM(v) FROM kv WHERE k LIKE 't%'") == sum(range(51))
    if before is not None:
        assert isinstance(kv, SqliteDatabase)
        commits = kv.commit_count - before[0]
        jobs = kv.write_job_count - before[1]
        assert jobs == 250
        assert commits < jobs / 2, f"group commit did not batch: {commits} commits, {jobs} jobs"


async def test_reads_not_blocked_by_open_transaction(kv: Database) -> None:
    await kv.execute("INSERT INTO kv (k, v) VALUES ('a', 1)")
    async with kv.transaction() as txn:
        await txn.execute("UPDATE kv SET v = 2")
        # The writer (SQLite) / row lock (PostgreSQL) is held, yet reads see the committed state.
        assert await asyncio.wait_for(kv.fetchval("SELECT v FROM kv"), 2) == 1
    assert await kv.fetchval("SELECT v FROM kv") == 2


async def test_cancelled_transaction_rolls_back_and_frees_the_writer(kv: Database) -> None:
    inside = asyncio.Event()

    async def stuck() -> None:
        async with kv.transaction() as txn:
            await txn.execute("INSERT INTO kv (k, v) VALUES ('lost', 1)")
            inside.set()
            await asyncio.Event().wait()  # e.g. a hung network call

    task = asyncio.create_task(stuck())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.wait_for(kv.execute("INSERT INTO kv (k, v) VALUES ('ok', 1)"), 5) == 1
    assert [r["k"] for r in await kv.fetch("SELECT k FROM kv")] == ["ok"]


async def test_write_on_db_inside_transaction_is_refused(kv: Database) -> None:
    async with kv.transaction() as txn:
        with pytest.raises(RuntimeError, match="deadlock"):
            await kv.execute("INSERT INTO kv (k, v) VALUES ('a', 1)")
        with pytest.raises(RuntimeError, match="deadlock"):
            await kv.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("a", 1)])
        with pytest.raises(RuntimeError, match="deadlock"):
            async with kv.transaction():
                pass
        with pytest.raises(RuntimeError, match="deadlock"):  # child tasks inherit the check
            await asyncio.create_task(kv.execute("INSERT INTO kv (k, v) VALUES ('a', 1)"))
        assert await kv.fetchval("SELECT COUNT(*) FROM kv") == 0  # reads are fine
        await txn.execute("INSERT INTO kv (k, v) VALUES ('b', 2)")
    assert await kv.execute("INSERT INTO kv (k, v) VALUES ('c', 3)") == 1
    assert await count(kv) == 2


async def test_closed_database_refuses_work(tmp_path: Path) -> None:
    db = await connect_database(engine="sqlite", sqlite_path=tmp_path / "c.db")
    await db.close()
    await db.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await db.fetchval("SELECT 1")


async def test_sqlite_wal_removed_after_close(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "myelin.db"  # parent folders are created
    db = await connect_database(engine="sqlite", sqlite_path=path)
    await db.execute(KV)
    await asyncio.gather(*(db.execute("INSERT INTO kv (k, v) VALUES ($1, 1)", str(i))
                           for i in range(20)))
    assert await db.fetchval("PRAGMA journal_mode") == "wal"
    assert path.with_name("myelin.db-wal").exists()
    await db.close()
    assert not path.with_name("myelin.db-wal").exists()
    db = await connect_database(engine="sqlite", sqlite_path=path)
    try:
        assert await count(db) == 20
    finally:
        await db.close()


async def test_sqlite_readers_are_read_only(tmp_path: Path) -> None:
    db = await connect_database(engine="sqlite", sqlite_path=tmp_path / "r.db")
    try:
        await db.execute(KV)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db.fetch("INSERT INTO kv (k, v) VALUES ('a', 1) RETURNING k")
    finally:
        await db.close()


async def test_sqlite_readers_keep_a_small_page_cache(tmp_path: Path) -> None:
    """Readers' caches are dropped after each commit of the writer, so they are kept small."""
    db = await connect_database(engine="sqlite", sqlite_path=tmp_path / "p.db")
    try:
        sizes = {int(await db.fetchval("PRAGMA cache_size")) for _ in range(20)}
        assert sizes == {-READER_CACHE_KIB}
    finally:
        await db.close()


async def test_sqlite_failed_commit_fails_whole_batch(tmp_path: Path) -> None:
    """A COMMIT failure reaches every job that shared it, and the writer carries on."""
    db = await connect_database(engine="sqlite", sqlite_path=tmp_path / "b.db")
    try:
        await db.execute(KV)
        await db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        await db.execute("CREATE TABLE child (id INTEGER PRIMARY KEY,"
                         " parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
        # Created before the transaction, these run (and queue) once it has taken the writer,
        # so they share its batch; created inside it, the deadlock guard would refuse them.
        bystanders = [
            asyncio.create_task(db.execute("INSERT INTO kv (k, v) VALUES ($1, 1)", f"{i}"))
            for i in range(3)
        ]
        with pytest.raises(IntegrityError):
            async with db.transaction() as txn:
                await asyncio.sleep(0.05)
                await txn.execute("INSERT INTO child (id, parent_id) VALUES (1, 42)")
        for task in bystanders:
            with pytest.raises(IntegrityError):
                await task
        assert await count(db) == 0
        assert await db.execute("INSERT INTO kv (k, v) VALUES ('after', 1)") == 1
    finally:
        await db.close()


async def test_write_batch_is_atomic(kv: Database) -> None:
    await kv.write_batch([
        Statement("INSERT INTO kv (k, v) VALUES ($1, $2)", ("a", 1)),
        Statement("INSERT INTO kv (k, v) VALUES ($1, $2)", [("b", 2), ("c", 3)], many=True),
        Statement("UPDATE kv SET v = v + 10 WHERE k = $1", ("a",)),
    ])
    assert await kv.fetchval("SELECT v FROM kv WHERE k = 'a'") == 11
    assert await count(kv) == 3
    with pytest.raises(IntegrityError):
        await kv.write_batch([
            Statement("INSERT INTO kv (k, v) VALUES ($1, $2)", ("d", 4)),
            Statement("INSERT INTO kv (k, v) VALUES ($1, $2)", ("a", 5)),  # duplicate key
        ])
    assert await count(kv) == 3  # "d" was rolled back with the failing statement
    await kv.write_batch([])


async def test_write_batch_groups_same_sql_without_changing_the_outcome(kv: Database) -> None:
    """Events' writes interleave (row, then a change that reads it, per event): grouping the
    same SQL texts must leave each dependent statement after what it depends on."""
    await kv.execute("CREATE TABLE log (k TEXT PRIMARY KEY, seen BIGINT NOT NULL)")
    insert = "INSERT INTO kv (k, v) VALUES ($1, $2)"
    copy = "INSERT INTO log (k, seen) SELECT k, v FROM kv WHERE k = $1"
    bump = "UPDATE kv SET v = v + 100 WHERE k = $1"
    upsert = ("INSERT INTO kv (k, v) VALUES ($1, $2)"
              " ON CONFLICT (k) DO UPDATE SET v = excluded.v")
    await kv.write_batch([
        Statement(insert, ("a", 1)), Statement(copy, ("a",)), Statement(bump, ("a",)),
        Statement(insert, ("b", 2)), Statement(copy, ("b",)), Statement(bump, ("b",)),
        Statement(upsert, ("c", 1)), Statement(upsert, ("c", 2)),  # the later one wins
    ])
    rows = await kv.fetch("SELECT k, seen FROM log ORDER BY k")
    assert [(r["k"], r["seen"]) for r in rows] == [("a", 1), ("b", 2)]  # copied before bumps
    rows = await kv.fetch("SELECT k, v FROM kv ORDER BY k")
    assert [(r["k"], r["v"]) for r in rows] == [("a", 101), ("b", 102), ("c", 2)]
