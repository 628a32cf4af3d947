"""A minimal Matrix client-server API client for the load tool.

It speaks only the standard client-server API (v3 endpoints, m.login.dummy registration), so
the same scenario runs unchanged against Myelin, Synapse or any other homeserver. One aiohttp
session with one connection pool is shared by every simulated user: the load generator must
cost as little CPU as possible, because it runs on the same machine as the server.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import orjson

T = TypeVar("T")

# Unique per process: two runs against one server never collide on user names or txn IDs.
RUN_ID = uuid.uuid4().hex[:8]
_txn_counter = itertools.count()


class HttpError(RuntimeError):
    """A non-2xx answer; benchmarks stop on it rather than count a failure as a fast answer."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path} -> {status}: {body[:300]!r}")
        self.status = status


def new_txn_id() -> str:
    """A transaction ID never used before by this process (each request is a new event)."""
    return f"{RUN_ID}.{os.getpid()}.{next(_txn_counter)}"


def localpart(scenario: str, index: int) -> str:
    """A user name unique to this run, so scenarios can share one long-lived server."""
    return f"b{RUN_ID}_{scenario}_{index}".lower().replace("-", "_")


@dataclass
class Http:
    """The shared connection pool plus the server's base URL."""

    base_url: str
    pool_size: int = 100
    session: aiohttp.ClientSession = field(init=False)

    async def __aenter__(self) -> Http:
        connector = aiohttp.TCPConnector(limit=self.pool_size, ssl=False,
                                         ttl_dns_cache=None, force_close=False)
        self.session = aiohttp.ClientSession(
            connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=600))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def request(self, method: str, path: str, token: str | None = None,
                      body: Any = None, params: dict[str, str] | None = None,
                      ) -> tuple[dict[str, Any], int]:
        """Send one request; return the decoded JSON body and its size in bytes."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        async with self.session.request(method, self.base_url + path, data=data,
                                        headers=headers, params=params) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise HttpError(method, path, resp.status, raw)
        return (orjson.loads(raw) if raw else {}), len(raw)


@dataclass
class User:
    """One logged-in account."""

    http: Http
    user_id: str
    token: str

    async def call(self, method: str, path: str, body: Any = None,
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        return (await self.http.request(method, path, self.token, body, params))[0]

    async def create_room(self, room_version: str, preset: str = "public_chat",
                          **extra: Any) -> str:
        body = {"preset": preset, "room_version": room_version, **extra}
        return str((await self.call("POST", "/_matrix/client/v3/createRoom", body))["room_id"])

    async def join(self, room_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/join/{quote(room_id)}", {})

    async def send_text(self, room_id: str, text: str) -> str:
        path = (f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/"
                f"{new_txn_id()}")
        body = {"msgtype": "m.text", "body": text}
        return str((await self.call("PUT", path, body))["event_id"])

    async def sync(self, params: dict[str, str]) -> tuple[dict[str, Any], int]:
        return await self.http.request("GET", "/_matrix/client/v3/sync", self.token,
                                       params=params)


async def register(http: Http, name: str, password: str = "bench-password") -> User:
    """Register through the standard /register with m.login.dummy (open registration).

    The dummy stage is offered straight away; servers that want a UIA session first (answer
    401 with a session ID) get the request again with that session.
    """
    body: dict[str, Any] = {"username": name, "password": password,
                            "auth": {"type": "m.login.dummy"}, "inhibit_login": False}
    try:
        answer, _ = await http.request("POST", "/_matrix/client/v3/register", body=body)
    except HttpError as e:
        if e.status != 401:
            raise
        answer, _ = await http.request("POST", "/_matrix/client/v3/register", body={
            **body, "auth": {"type": "m.login.dummy", "session": await _uia_session(http)}})
    return User(http, str(answer["user_id"]), str(answer["access_token"]))


async def _uia_session(http: Http) -> str:
    async with http.session.post(http.base_url + "/_matrix/client/v3/register",
                                 data=b"{}") as resp:
        return str(orjson.loads(await resp.read())["session"])


async def register_many(http: Http, scenario: str, count: int, concurrency: int = 8,
                        start: int = 0) -> list[User]:
    """Register ``count`` users, ``concurrency`` at a time (setup, not timed)."""
    return await bounded([partial(register, http, localpart(scenario, i))
                          for i in range(start, start + count)], concurrency)


async def bounded(jobs: Iterable[Callable[[], Awaitable[T]]], concurrency: int) -> list[T]:
    """Run the jobs with at most ``concurrency`` in flight; results in job order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(prefix: str, seconds: list[float]) -> dict[str, float]:
    """p50/p99/max of a list of durations, in milliseconds, keyed ``<prefix>_p50_ms`` etc."""
    if not seconds:
        return {}
    return {f"{prefix}_p50_ms": round(percentile(seconds, 50) * 1000, 2),
            f"{prefix}_p99_ms": round(percentile(seconds, 99) * 1000, 2),
            f"{prefix}_max_ms": round(max(seconds) * 1000, 2)}


now = time.perf_counter
