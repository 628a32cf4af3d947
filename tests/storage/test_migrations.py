"""The migration runner, on both engines: ordering, idempotence, atomicity, version guard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from myelin.storage.database import Database, connect_database
from myelin.storage.migrations import (
    Migration,
    SchemaTooNewError,
    available_migrations,
    load_migrations,
    migrate,
    schema_version,
)

from conftest import create_postgres_database, requires_postgres


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_shipped_migrations_are_numbered_from_one() -> None:
    shipped = available_migrations()
    assert shipped[0] == (1, "accounts")
    assert [n for n, _ in shipped] == list(range(1, len(shipped) + 1))


def test_load_rejects_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="badly named"):
        load_migrations(write(tmp_path / "a", {"0001-oops.sql": "SELECT 1;"}))
    with pytest.raises(ValueError, match="used by both"):
        load_migrations(write(tmp_path / "b", {"0001_x.sql": "", "0001_y.sql": ""}))


async def test_fresh_database_migrates_and_is_idempotent(empty_db: Database) -> None:
    assert await schema_version(empty_db) == 0
    numbers = [n for n, _ in available_migrations()]
    assert await migrate(empty_db) == numbers
    assert await schema_version(empty_db) == numbers[-1]
    assert await migrate(empty_db) == []
    rows = await empty_db.fetch("SELECT version, name, applied_ts FROM schema_version")
    assert [(r["version"], r["name"]) for r in rows] == available_migrations()
    assert all(r["applied_ts"] > 1_600_000_000_000 for r in rows)
    assert await empty_db.fetchval("SELECT COUNT(*) FROM users") == 0


async def test_engine_specific_files_win(empty_db: Database, tmp_path: Path) -> None:
    folder = write(tmp_path, {
        "0001_base.sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT);",
        "0002_seed.sqlite.sql": "INSERT INTO t (id, note) VALUES (1, 'sqlite');",
        "0002_seed.postgres.sql": "INSERT INTO t (id, note) VALUES (1, 'postgres');",
        "0003_more.sql": "INSERT INTO t (id, note) VALUES (2, 'shared');",
        "0003_more.postgres.sql": "INSERT INTO t (id, note) VALUES (2, 'pg-only');",
        "README.txt": "not a migration",
    })
    migrations = load_migrations(folder)
    assert [(m.number, m.name) for m in migrations] == [(1, "base"), (2, "seed"), (3, "more")]
    assert await migrate(empty_db, migrations=migrations[:2]) == [1, 2]
    assert await migrate(empty_db, migrations=migrations) == [3]
    notes = [r["note"] for r in await empty_db.fetch("SELECT note FROM t ORDER BY id")]
    expected = ["sqlite", "shared"] if empty_db.engine == "sqlite" else ["postgres", "pg-only"]
    assert notes == expected


async def test_failed_migration_leaves_no_trace(empty_db: Database) -> None:
    good = Migration(1, "good", {"": "CREATE TABLE a (id INTEGER PRIMARY KEY);"})
    bad = Migration(2, "bad", {"": "CREATE TABLE b (id INTEGER);\nINSERT INTO nowhere VALUES (1);"})
    later = Migration(3, "later", {"": "CREATE TABLE c (id INTEGER);"})
    with pytest.raises(Exception, match="nowhere"):
        await migrate(empty_db, migrations=[later, bad, good])  # order comes from the numbers
    assert await schema_version(empty_db) == 1
    await empty_db.execute("INSERT INTO a (id) VALUES (1)")
    with pytest.raises(Exception, match="b"):  # table b was rolled back with the migration
        await empty_db.fetch("SELECT id FROM b")
    fixed = Migration(2, "bad", {"": "CREATE TABLE b (id INTEGER);"})
    assert await migrate(empty_db, migrations=[good, fixed, later]) == [2, 3]


async def test_schema_too_new_is_refused(db: Database) -> None:
    newest = available_migrations()[-1][0]
    await db.execute(
        "INSERT INTO schema_version (version, name, applied_ts) VALUES ($1, 'future', 0)",
        newest + 1,
    )
    assert await schema_version(db) == newest + 1
    with pytest.raises(SchemaTooNewError, match="newer Myelin"):
        await migrate(db)


@requires_postgres
async def test_postgres_concurrent_migrations_do_not_race() -> None:
    dsn, drop = await create_postgres_database()
    try:
        dbs = [await connect_database(engine="postgresql", postgres_dsn=dsn, pool_size=2)
               for _ in range(3)]
        try:
            results = await asyncio.gather(*(migrate(d) for d in dbs))
            assert sorted(results, key=len) == [[], [], [n for n, _ in available_migrations()]]
        finally:
            for d in dbs:
                await d.close()
    finally:
        await drop()
