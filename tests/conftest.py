"""Shared test fixtures: databases on every engine, and throwaway PostgreSQL databases.

SQLite always runs. PostgreSQL runs only when ``MYELIN_TEST_POSTGRES`` holds a DSN (e.g.
``postgresql://postgres@127.0.0.1:5432/test``); each test then gets a brand-new database created
through that DSN and dropped afterwards, so tests never see each other's rows and can run in any
order. Without the variable the PostgreSQL cases are skipped with a visible reason instead of
silently passing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from myelin.storage.database import Database, connect_database
from myelin.storage.migrations import migrate

if Path(__file__).with_name("server_fixtures.py").exists():
    pytest_plugins = ["server_fixtures", "js_clients", "federation_fixtures"]

POSTGRES_ENV = "MYELIN_TEST_POSTGRES"
POSTGRES_SKIP_REASON = f"set {POSTGRES_ENV} to a DSN to run PostgreSQL tests"

requires_postgres = pytest.mark.skipif(
    not os.environ.get(POSTGRES_ENV), reason=POSTGRES_SKIP_REASON
)


def postgres_test_dsn() -> str | None:
    """The PostgreSQL DSN tests may use to create databases, or ``None`` when not configured."""
    return os.environ.get(POSTGRES_ENV) or None


def _dsn_for_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database on the same server (URI-form DSNs only)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def create_postgres_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    """Create an empty ``myelin_t_<random>`` database; return its DSN and an async dropper.

    The dropper uses ``WITH (FORCE)`` so connections a failed test leaked cannot keep the
    database alive, and may be called more than once.
    """
    admin_dsn = postgres_test_dsn()
    if admin_dsn is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    name = f"myelin_t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return _dsn_for_database(admin_dsn, name), drop


@pytest.fixture
async def fresh_postgres_dsn() -> AsyncIterator[str]:
    """DSN of a fresh, empty PostgreSQL database, dropped after the test (skips if unset)."""
    dsn, drop = await create_postgres_database()
    try:
        yield dsn
    finally:
        await drop()


async def open_database(engine: str, tmp_path: Path, postgres_dsn: str | None = None) -> Database:
    """Open (unmigrated) the engine's database: SQLite in ``tmp_path``, PostgreSQL at the DSN."""
    if engine == "sqlite":
        return await connect_database(engine="sqlite", sqlite_path=tmp_path / "myelin.db")
    return await connect_database(engine="postgresql", postgres_dsn=postgres_dsn, pool_size=10)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=requires_postgres)])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A brand-new, unmigrated database, once per engine; closed (and dropped) afterwards."""
    drop: Callable[[], Awaitable[None]] | None = None
    dsn = None
    if request.param == "postgresql":
        dsn, drop = await create_postgres_database()
    try:
        database = await open_database(request.param, tmp_path, dsn)
        try:
            yield database
        finally:
            await database.close()
    finally:
        if drop is not None:
            await drop()


@pytest.fixture
async def db(empty_db: Database) -> Database:
    """A freshly migrated database, once per engine."""
    await migrate(empty_db)
    return empty_db
