"""Fixtures for federation tests (a pytest plugin loaded from conftest.py): Myelins that serve
the server-server API over TLS under IP-literal names, and a real Synapse.

A federating Myelin is named ``127.0.0.1:PORT`` after its federation listener, so other
servers reach it with no .well-known, SRV or DNS. Tests marked ``federation`` need Synapse
(see synapse_harness.py) and are skipped, saying why, when it is not installed.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from myelin.server import Homeserver

from harness import Client, RunningServer, logged_in_user, merge, test_config
from synapse_harness import SynapseServer, self_signed_certificate, start_synapse, synapse_python

FederatingFactory = Callable[..., Awaitable["FederatingServer"]]


class FederatingServer(RunningServer):
    @property
    def server_name(self) -> str:
        return str(self.services.config.server_name)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def federation_overrides(data_dir: Path, port: int) -> dict[str, Any]:
    cert, key = self_signed_certificate(data_dir)
    return {
        "server_name": f"127.0.0.1:{port}",
        "federation": {"listen": f"127.0.0.1:{port}", "tls_certificate_path": str(cert),
                       "tls_private_key_path": str(key), "verify_certificates": False,
                       "allow_private_destinations": True},
    }


@pytest.fixture
async def federating_server(
    tmp_path: Path, http_session: aiohttp.ClientSession,
) -> AsyncIterator[FederatingFactory]:
    """Call (with config overrides) to start a Myelin that federates; stopped after the test."""
    from conftest import postgres_test_dsn
    from server_fixtures import _fresh_postgres

    started: list[Homeserver] = []
    drops: list[Callable[[], Awaitable[None]]] = []

    async def start(**overrides: Any) -> FederatingServer:
        data_dir = tmp_path / f"fed{len(started)}"
        data_dir.mkdir()
        dsn = None
        if postgres_test_dsn() is not None:
            dsn, drop = await _fresh_postgres()
            drops.append(drop)
        raw = merge(federation_overrides(data_dir, free_port()), overrides)
        server = Homeserver(test_config(data_dir, postgres_dsn=dsn, **raw))
        await server.start()
        started.append(server)
        return FederatingServer(server, Client(f"http://127.0.0.1:{server.port}", http_session))

    yield start
    for server in reversed(started):
        await server.stop()
    for drop in drops:
        await drop()


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """One Synapse for the module's tests (it takes seconds to start); each test makes its own
    users and rooms."""
    python = synapse_python()
    if python is None:
        pytest.skip("Synapse is not installed (set MYELIN_SYNAPSE_PYTHON; .ci/run installs it)")
    server = start_synapse(tmp_path_factory.mktemp("synapse"), free_port(), python)
    try:
        yield server
    finally:
        server.stop()


async def synapse_user(synapse: SynapseServer, localpart: str,
                       session: aiohttp.ClientSession | None = None) -> Client:
    """Register ``localpart`` on Synapse (open registration, dummy auth) and return a client
    logged in as it. The session skips TLS verification (Synapse's certificate is
    self-signed)."""
    if session is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
        _sessions.append(session)
    client = Client(synapse.url, session)
    response = await client.post("/_matrix/client/v3/register", {
        "username": localpart, "password": "pw", "auth": {"type": "m.login.dummy"},
        "inhibit_login": False})
    if response.status == 400 and response.json.get("errcode") == "M_USER_IN_USE":
        login = await client.login(localpart, "pw")
        assert login.status == 200, login
        return client
    assert response.status == 200, response
    client.token = response.json["access_token"]
    return client


_sessions: list[aiohttp.ClientSession] = []


@pytest.fixture(autouse=True)
async def _close_synapse_sessions() -> AsyncIterator[None]:
    yield
    while _sessions:
        await _sessions.pop().close()


@dataclass
class Peer:
    """The other server of an interop test: a real Synapse, or a second Myelin. The same test
    then checks Myelin against both, as the federation issue asks."""

    kind: str
    server_name: str
    url: str
    ssl: bool  # whether clients should verify its TLS (Synapse's certificate is self-signed)
    _user: Callable[[str], Awaitable[Client]]
    _log: Callable[[int], str]

    async def user(self, localpart: str) -> Client:
        return await self._user(localpart)

    def log_tail(self, lines: int = 60) -> str:
        return self._log(lines)


@pytest.fixture(params=["synapse", "myelin"])
async def peer(request: pytest.FixtureRequest,
               federating_server: FederatingFactory) -> Peer:
    if request.param == "synapse":
        synapse: SynapseServer = request.getfixturevalue("synapse")
        return Peer("synapse", synapse.server_name, synapse.url, False,
                    lambda name: synapse_user(synapse, name), synapse.log_tail)
    other = await federating_server(registration={"enabled": True})

    async def user(name: str) -> Client:
        return await logged_in_user(other, name)
    return Peer("myelin", other.server_name, other.url, True, user,
                lambda lines: "(in-process Myelin: see the test's log)")
