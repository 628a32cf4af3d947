"""Fixtures that start whole homeservers (loaded from conftest.py as a pytest plugin).

With MYELIN_TEST_POSTGRES set, every server runs on its own fresh PostgreSQL database;
otherwise on SQLite in the test's temporary folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from myelin.server import Homeserver

from harness import Client, RunningServer, test_config

ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def start_server(
    tmp_path: Path, http_session: aiohttp.ClientSession, request: pytest.FixtureRequest
) -> AsyncIterator[ServerFactory]:
    """Call with config overrides to start a server; all are stopped after the test."""
    from conftest import postgres_test_dsn

    started: list[Homeserver] = []
    dsn_cleanups: list[Any] = []

    async def start(**overrides: Any) -> RunningServer:
        data_dir = tmp_path / f"hs{len(started)}"
        data_dir.mkdir()
        dsn = None
        if postgres_test_dsn() is not None:
            dsn, drop = await _fresh_postgres()
            dsn_cleanups.append(drop)
        server = Homeserver(test_config(data_dir, postgres_dsn=dsn, **overrides))
        await server.start()
        started.append(server)
        return RunningServer(server, Client(f"http://127.0.0.1:{server.port}", http_session))

    yield start
    for server in reversed(started):
        await server.stop()
    for drop in dsn_cleanups:
        await drop()


async def _fresh_postgres() -> tuple[str, Callable[[], Awaitable[None]]]:
    from conftest import create_postgres_database

    return await create_postgres_database()


@pytest.fixture
async def homeserver(start_server: ServerFactory) -> RunningServer:
    return await start_server()
