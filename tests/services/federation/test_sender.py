"""FederationSender against real loopback HTTPS servers standing in for other homeservers.

Each peer is an aiohttp server with a self-signed certificate whose server name is its IP
literal and port (``127.0.0.1:PORT``: no discovery involved); the client skips certificate
checks and may reach loopback. Peers answer ``PUT /send/{txnId}`` from a script (status, body)
and then with 200, recording every attempt, so the tests see ordering, batching, retries and
transaction IDs as a remote server would. Signatures are dummies: nothing here checks them.
Every test runs on SQLite and (with MYELIN_TEST_POSTGRES) PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from myelin.services.federation.client import FederationClient
from myelin.services.federation.discovery import ServerResolver, WellKnownResponse
from myelin.services.federation.sender import FederationSender
from myelin.storage.database import Database
from myelin.storage.stores.federation_outbox import FederationOutboxStore

from synapse_harness import self_signed_certificate

ORIGIN = "origin.test"
SEND = "/_matrix/federation/v1/send/"


@dataclass
class Attempt:
    txn_id: str
    body: dict[str, Any]
    authorization: str | None
    at: float


@dataclass
class Peer:
    """A remote homeserver's /send endpoint; ``script`` answers attempts before the 200s."""

    tls: ssl.SSLContext
    port: int = 0
    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    accepted: list[Attempt] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=lambda: {"pdus": {}})
    hold: asyncio.Event | None = None
    refuse: Callable[[dict[str, Any]], bool] | None = None  # bodies answered with a 400
    runner: web.AppRunner | None = None

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Peer:
        app = web.Application()
        app.router.add_put(SEND + "{txn_id}", self._send)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.tls,
                           reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _send(self, request: web.Request) -> web.Response:
        attempt = Attempt(request.match_info["txn_id"], await request.json(),
                          request.headers.get("Authorization"), time.monotonic())
        self.attempts.append(attempt)
        if self.hold is not None:
            await self.hold.wait()
        if self.script:
            status, body = self.script.pop(0)
            return web.json_response(body, status=status)
        if self.refuse is not None and self.refuse(attempt.body):
            return web.json_response({"errcode": "M_BAD_JSON", "error": "no"}, status=400)
        self.accepted.append(attempt)
        return web.json_response(self.answer)

    def pdus(self) -> list[str]:
        return [p["event_id"] for a in self.accepted for p in a.body["pdus"]]

    def edus(self) -> list[Any]:
        return [e for a in self.accepted for e in a.body["edus"]]


def pdu(n: int) -> dict[str, Any]:
    return {"event_id": f"$e{n}", "room_id": "!r:origin.test", "type": "m.room.message",
            "sender": "@a:origin.test", "content": {"body": str(n)}}


def typing(room: str, user: str, on: bool) -> dict[str, Any]:
    return {"room_id": room, "user_id": user, "typing": on}


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Poll a condition on state the sender's tasks change (they signal nothing to wait on)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {within} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def queued_rows(db: Database, destination: str | None = None) -> int:
    if destination is None:
        return int(await db.fetchval("SELECT COUNT(*) FROM federation_outbox"))
    return int(await db.fetchval(
        "SELECT COUNT(*) FROM federation_outbox WHERE destination = $1", destination))


class LowJitter(random.Random):
    """Jitter pinned to its lower bound, so back-off delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return a


class RecordingStore(FederationOutboxStore):
    """Records each persisted back-off as (failures, delay it asked for in seconds)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.backoffs: list[tuple[int, float]] = []

    async def set_retry(self, destination: str, failures: int, retry_at_ts: int | None) -> None:
        asked = None if retry_at_ts is None else retry_at_ts / 1000 - time.time()
        await super().set_retry(destination, failures, retry_at_ts)
        if asked is not None:  # recorded once written, so a test seeing it may read the row
            self.backoffs.append((failures, asked))


PeerFactory = Callable[..., Awaitable[Peer]]


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("peer-tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
async def peers(tls: ssl.SSLContext) -> AsyncIterator[PeerFactory]:
    made: list[Peer] = []

    async def factory(*, port: int = 0, started: bool = True) -> Peer:
        peer = Peer(tls, port)
        made.append(peer)
        return await peer.start() if started else peer

    yield factory
    for peer in made:
        await peer.stop()


@pytest.fixture
async def peer(peers: PeerFactory) -> Peer:
    return await peers()


async def _no_well_known(_hostname: str) -> WellKnownResponse:
    return WellKnownResponse(404, b"")


async def _no_srv(_name: str) -> list[tuple[str, int, int, int]]:
    return []


def _sign(destination: str, method: str, uri: str, content: Any | None) -> str:
    return f'X-Matrix origin="{ORIGIN}",destination="{destination}",key="ed25519:t",sig="x"'


@pytest.fixture
async def client() -> AsyncIterator[FederationClient]:
    resolver = ServerResolver(srv_lookup=_no_srv, well_known_getter=_no_well_known)
    made = FederationClient(ORIGIN, _sign, resolver, verify_tls=False,
                            allow_private_destinations=True, timeout_s=5)
    yield made
    await made.close()


SenderFactory = Callable[..., FederationSender]


@pytest.fixture
async def make_sender(db: Database,
                      client: FederationClient) -> AsyncIterator[SenderFactory]:
    made: list[FederationSender] = []

    def factory(store: FederationOutboxStore | None = None, **options: Any) -> FederationSender:
        settings: dict[str, Any] = {"min_backoff_s": 0.05, "max_backoff_s": 0.4,
                                    "request_timeout_s": 5}
        settings.update(options)
        sender = FederationSender(store or FederationOutboxStore(db), client, ORIGIN,
                                  **settings)
        made.append(sender)
        return sender

    yield factory
    for sender in made:
        await sender.stop()


# -- delivery ------------------------------------------------------------------------------


async def test_pdus_and_edus_delivered_in_order(db: Database, peer: Peer,
                                                make_sender: SenderFactory) -> None:
    sender = make_sender()
    await sender.send_pdu([peer.name], pdu(1))
    await sender.send_edu(peer.name, "m.typing", typing("!r:o", "@a:o", True))
    await sender.send_pdu([peer.name], pdu(2))
    assert sender.queued(peer.name) == 3 and peer.attempts == []  # not started: only stored
    before = int(time.time() * 1000)
    await sender.start()
    await eventually(lambda: len(peer.accepted) == 1)
    first = peer.accepted[0]
    assert first.body["origin"] == ORIGIN
    assert before <= first.body["origin_server_ts"] <= int(time.time() * 1000)
    assert first.body["pdus"] == [pdu(1), pdu(2)]
    assert first.body["edus"] == [{"edu_type": "m.typing",
                                   "content": typing("!r:o", "@a:o", True)}]
    assert first.authorization is not None and first.authorization.startswith("X-Matrix ")
    await eventually(lambda: sender.queued(peer.name) == 0)
    assert await queued_rows(db) == 0
    state = await FederationOutboxStore(db).destination_state(peer.name)
    assert state is not None and state.failures == 0 and state.last_success_ts is not None
    # Live traffic once running: a new worker wakes, a new transaction ID.
    await sender.send_edu(peer.name, "m.presence", {"push": []})
    await sender.send_pdu([peer.name], pdu(3))
    await eventually(lambda: peer.pdus() == ["$e1", "$e2", "$e3"])
    assert peer.edus()[-1]["edu_type"] == "m.presence"
    assert len({a.txn_id for a in peer.accepted}) == len(peer.accepted)


async def test_more_than_50_pdus_are_split_in_order(peer: Peer,
                                                    make_sender: SenderFactory) -> None:
    sender = make_sender()
    await sender.send_edu(peer.name, "m.receipt", {"n": 0})
    for n in range(1, 121):
        await sender.send_pdu([peer.name], pdu(n))
        if n == 60:
            await sender.send_edu(peer.name, "m.receipt", {"n": 60})
    await sender.start()
    await eventually(lambda: len(peer.pdus()) == 120)
    assert peer.pdus() == [f"$e{n}" for n in range(1, 121)]
    assert [len(a.body["pdus"]) for a in peer.accepted] == [50, 50, 20]
    # An EDU never overtakes a PDU queued before it: the receipt after PDU 60 waits for it.
    assert [[e["content"]["n"] for e in a.body["edus"]] for a in peer.accepted] == [[0], [60], []]
    assert len({a.txn_id for a in peer.accepted}) == 3


async def test_more_than_100_edus_are_split_in_order(peer: Peer,
                                                     make_sender: SenderFactory) -> None:
    sender = make_sender()
    for n in range(130):
        await sender.send_edu(peer.name, "m.direct_to_device", {"n": n})
    await sender.send_pdu([peer.name], pdu(1))
    await sender.start()
    await eventually(lambda: len(peer.edus()) == 130 and peer.pdus() == ["$e1"])
    assert [e["content"]["n"] for e in peer.edus()] == list(range(130))
    assert [(len(a.body["edus"]), len(a.body["pdus"])) for a in peer.accepted] == [(100, 0),
                                                                                  (30, 1)]


async def test_each_destination_has_its_own_queue(db: Database, peers: PeerFactory,
                                                  make_sender: SenderFactory) -> None:
    up, down = await peers(), await peers()
    down.script = [(500, {})] * 1000
    sender = make_sender()
    await sender.start()
    for n in range(1, 6):
        await sender.send_pdu([up.name, down.name], pdu(n))
    await eventually(lambda: up.pdus() == [f"$e{n}" for n in range(1, 6)])
    # The peer records a transaction before the sender has read its answer and dequeued it.
    await eventually(lambda: sender.queued(up.name) == 0)
    assert sender.queued(down.name) == 5 and await queued_rows(db, down.name) == 5


async def test_own_server_name_and_invalid_names_are_skipped(db: Database, peer: Peer,
                                                             make_sender: SenderFactory) -> None:
    sender = make_sender()
    await sender.start()
    await sender.send_pdu([ORIGIN, "not a server name", peer.name, peer.name], pdu(1))
    await sender.send_edu(ORIGIN, "m.typing", typing("!r:o", "@a:o", True))
    await sender.send_pdu([ORIGIN], pdu(2))
    await eventually(lambda: peer.pdus() == ["$e1"] and sender.queued(peer.name) == 0)
    assert sender.queued(ORIGIN) == 0 and await queued_rows(db) == 0
    assert len(peer.attempts) == 1


# -- failures and retries ------------------------------------------------------------------


async def test_down_destination_backs_off_then_catches_up(
    db: Database, peers: PeerFactory, make_sender: SenderFactory
) -> None:
    peer = await peers(port=free_port(), started=False)  # nothing listens yet
    store = RecordingStore(db)
    sender = make_sender(store, rng=LowJitter())
    await sender.start()
    await sender.send_pdu([peer.name], pdu(1))
    await sender.send_edu(peer.name, "m.typing", typing("!r:o", "@a:o", True))
    await sender.send_pdu([peer.name], pdu(2))
    await eventually(lambda: len(store.backoffs) >= 5)
    failures = [f for f, _ in store.backoffs[:5]]
    delays = [d for _, d in store.backoffs[:5]]
    assert failures == [1, 2, 3, 4, 5]
    # 0.05 s doubling to the 0.4 s cap (LowJitter: no jitter; allow for the clock advancing).
    for delay, expected in zip(delays, [0.05, 0.1, 0.2, 0.4, 0.4], strict=True):
        assert expected - 0.02 <= delay <= expected + 0.001
    until = sender.backoff_until(peer.name)
    assert until is not None and until > time.time() - 1
    state = await store.destination_state(peer.name)
    assert state is not None and state.failures >= 5 and state.retry_at_ts is not None
    await sender.send_pdu([peer.name], pdu(3))  # queued while down
    await peer.start()
    await eventually(lambda: peer.pdus() == ["$e1", "$e2", "$e3"])
    assert peer.edus() == [{"edu_type": "m.typing", "content": typing("!r:o", "@a:o", True)}]
    assert sender.backoff_until(peer.name) is None
    state = await store.destination_state(peer.name)
    assert state is not None and (state.failures, state.retry_at_ts) == (0, None)
    assert state.last_success_ts is not None


async def test_retries_of_a_batch_reuse_its_txn_id(peer: Peer,
                                                   make_sender: SenderFactory) -> None:
    peer.script = [(500, {"errcode": "M_UNKNOWN"}), (502, {}),
                   (429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 300})]
    sender = make_sender()
    await sender.send_pdu([peer.name], pdu(1))
    await sender.send_edu(peer.name, "m.typing", typing("!r:o", "@a:o", True))
    await sender.start()
    await eventually(lambda: len(peer.accepted) == 1)
    await sender.send_pdu([peer.name], pdu(2))  # queued during the retries: a new batch
    await eventually(lambda: peer.pdus() == ["$e1", "$e2"])
    first, *retries = peer.attempts[:4]
    assert all(r.txn_id == first.txn_id and r.body == first.body for r in retries)
    assert retries[-1].at - retries[-2].at >= 0.29  # the 429's retry_after_ms was honoured
    assert peer.attempts[4].txn_id != first.txn_id
    assert sender.backoff_until(peer.name) is None


async def test_a_refused_transaction_is_dropped(db: Database, peer: Peer,
                                                make_sender: SenderFactory,
                                                caplog: pytest.LogCaptureFixture) -> None:
    # 4xx other than 408/429: the destination refuses this transaction; resending the same
    # bytes cannot help, so the batch is dropped and later items still flow.
    peer.script = [(400, {"errcode": "M_BAD_JSON", "error": "no"}),
                   (403, {"errcode": "M_FORBIDDEN"})]
    sender = make_sender(min_backoff_s=30, max_backoff_s=60)  # a back-off would stall the test
    await sender.start()
    with caplog.at_level(logging.WARNING, logger="myelin.federation"):
        await sender.send_pdu([peer.name], pdu(1))
        await eventually(lambda: len(peer.attempts) == 1 and sender.queued(peer.name) == 0)
        await sender.send_pdu([peer.name], pdu(2))
        await eventually(lambda: len(peer.attempts) == 2 and sender.queued(peer.name) == 0)
        await sender.send_pdu([peer.name], pdu(3))
        await eventually(lambda: peer.pdus() == ["$e3"])
    assert len({a.txn_id for a in peer.attempts}) == 3
    assert sender.backoff_until(peer.name) is None and await queued_rows(db) == 0
    assert sum("refused transaction" in r.getMessage() for r in caplog.records) == 2


async def test_per_pdu_errors_are_logged_not_retried(db: Database, peer: Peer,
                                                     make_sender: SenderFactory,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    peer.answer = {"pdus": {"$e1": {"error": "You are not allowed"}, "$e2": {}}}
    sender = make_sender()
    await sender.start()
    with caplog.at_level(logging.INFO, logger="myelin.federation"):
        await sender.send_pdu([peer.name], pdu(1))
        await eventually(lambda: sender.queued(peer.name) == 0)
    await asyncio.sleep(0.2)
    assert len(peer.attempts) == 1 and await queued_rows(db) == 0
    assert any("did not accept $e1: You are not allowed" in r.getMessage()
               for r in caplog.records)


async def test_destination_alive_ends_the_backoff(db: Database, peer: Peer,
                                                  make_sender: SenderFactory) -> None:
    peer.script = [(503, {})]
    sender = make_sender(min_backoff_s=30, max_backoff_s=60)
    await sender.start()
    sender.destination_alive("unknown.example")  # nothing known about it: a no-op
    await sender.send_pdu([peer.name], pdu(1))
    await eventually(lambda: sender.backoff_until(peer.name) is not None)
    until = sender.backoff_until(peer.name)
    assert until is not None and until > time.time() + 20
    await asyncio.sleep(0.2)
    assert len(peer.attempts) == 1  # waiting out the back-off...
    await sender.send_pdu([peer.name], pdu(2))  # ...which new items do not cut short
    await asyncio.sleep(0.2)
    assert len(peer.attempts) == 1
    sender.destination_alive(peer.name)  # it just sent us a request
    await eventually(lambda: peer.pdus() == ["$e1", "$e2"])
    assert sender.backoff_until(peer.name) is None
    state = await FederationOutboxStore(db).destination_state(peer.name)
    assert state is not None and (state.failures, state.retry_at_ts) == (0, None)


# -- restarts ------------------------------------------------------------------------------


async def test_queue_survives_a_restart(db: Database, peer: Peer,
                                        make_sender: SenderFactory) -> None:
    peer.script = [(500, {})] * 1000
    first = make_sender()
    await first.start()
    await first.send_pdu([peer.name], pdu(1))
    await first.send_edu(peer.name, "m.typing", typing("!r:o", "@a:o", True))
    await first.send_pdu([peer.name], pdu(2))
    await eventually(lambda: len(peer.attempts) >= 2)
    await first.stop()
    old_ids = {a.txn_id for a in peer.attempts}
    assert len(old_ids) == 1 and await queued_rows(db) == 3
    peer.script.clear()
    second = make_sender()  # a new process: fresh store and sender over the same database
    await second.start()
    assert second.queued(peer.name) == 3
    await eventually(lambda: peer.pdus() == ["$e1", "$e2"])
    assert peer.edus()[0]["edu_type"] == "m.typing"
    assert peer.accepted[0].txn_id not in old_ids  # a re-formed batch never reuses an ID
    await eventually(lambda: second.queued(peer.name) == 0)  # counted after the rows go
    assert await queued_rows(db) == 0


async def test_backoff_survives_a_restart(db: Database, peer: Peer,
                                          make_sender: SenderFactory) -> None:
    peer.script = [(500, {})]
    first = make_sender(min_backoff_s=30, max_backoff_s=60)
    await first.start()
    await first.send_pdu([peer.name], pdu(1))
    await eventually(lambda: first.backoff_until(peer.name) is not None)
    persisted = first.backoff_until(peer.name)
    store = FederationOutboxStore(db)
    for _ in range(500):  # held in memory first, then written
        state = await store.destination_state(peer.name)
        if state is not None and state.retry_at_ts is not None:
            break
        await asyncio.sleep(0.01)
    await first.stop()
    second = make_sender(min_backoff_s=30, max_backoff_s=60)
    await second.start()
    assert second.backoff_until(peer.name) == pytest.approx(persisted, abs=0.002)
    await asyncio.sleep(0.3)
    assert len(peer.attempts) == 1  # the stored retry time is honoured
    second.destination_alive(peer.name)
    await eventually(lambda: peer.pdus() == ["$e1"])


async def test_stop_abandons_an_in_flight_transaction(db: Database, peer: Peer,
                                                      make_sender: SenderFactory) -> None:
    peer.hold = asyncio.Event()  # the peer never answers
    first = make_sender()
    await first.start()
    await first.send_pdu([peer.name], pdu(1))
    await eventually(lambda: len(peer.attempts) == 1)
    started = time.monotonic()
    await first.stop()
    assert time.monotonic() - started < 1
    assert await queued_rows(db) == 1  # not acknowledged: still queued
    peer.hold.set()
    peer.hold = None
    second = make_sender()
    await second.start()
    await eventually(lambda: peer.pdus() == ["$e1"])


# -- EDU bookkeeping -----------------------------------------------------------------------


async def test_keyed_edus_replace_queued_ones(db: Database, peer: Peer,
                                              make_sender: SenderFactory) -> None:
    sender = make_sender()
    await sender.send_edu(peer.name, "m.typing", typing("!r:o", "@a:o", True), key="!r:o @a:o")
    await sender.send_edu(peer.name, "m.receipt", {"unkeyed": 1})
    await sender.send_edu(peer.name, "m.typing", typing("!r:o", "@b:o", True), key="!r:o @b:o")
    await sender.send_edu(peer.name, "m.typing", typing("!r:o", "@a:o", False), key="!r:o @a:o")
    await sender.send_edu(peer.name, "m.presence", {"other": "type"}, key="!r:o @a:o")
    assert sender.queued(peer.name) == 4 and await queued_rows(db) == 4
    await sender.start()
    await eventually(lambda: len(peer.edus()) == 4)
    assert peer.edus() == [
        {"edu_type": "m.receipt", "content": {"unkeyed": 1}},
        {"edu_type": "m.typing", "content": typing("!r:o", "@b:o", True)},
        {"edu_type": "m.typing", "content": typing("!r:o", "@a:o", False)},  # newest, last
        {"edu_type": "m.presence", "content": {"other": "type"}},
    ]


async def test_edu_cap_drops_the_oldest_edus_never_pdus(db: Database, peer: Peer,
                                                        make_sender: SenderFactory,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    sender = make_sender(max_queued_edus=5)
    await sender.send_pdu([peer.name], pdu(1))
    with caplog.at_level(logging.WARNING, logger="myelin.federation"):
        for n in range(8):
            await sender.send_edu(peer.name, "m.direct_to_device", {"n": n})
    await sender.send_pdu([peer.name], pdu(2))
    assert sender.queued(peer.name) == 7 and await queued_rows(db) == 7
    assert any("dropped the 1 oldest" in r.getMessage() for r in caplog.records)
    await sender.start()
    await eventually(lambda: sender.queued(peer.name) == 0 and len(peer.accepted) == 1)
    assert peer.pdus() == ["$e1", "$e2"]
    assert [e["content"]["n"] for e in peer.edus()] == [3, 4, 5, 6, 7]


async def test_a_400_is_bisected_down_to_the_item_to_blame(db: Database, peer: Peer,
                                                         make_sender: SenderFactory,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    # One malformed PDU must not cost the 49 others in its transaction.
    peer.refuse = lambda body: any(p["event_id"] == "$e5" for p in body["pdus"])
    sender = make_sender(min_backoff_s=30, max_backoff_s=60)  # a back-off would stall the test
    for n in range(1, 9):
        await sender.send_pdu([peer.name], pdu(n))
    with caplog.at_level(logging.WARNING, logger="myelin.federation"):
        await sender.start()
        await eventually(lambda: sender.queued(peer.name) == 0)
    assert peer.pdus() == ["$e1", "$e2", "$e3", "$e4", "$e6", "$e7", "$e8"]
    # 1-8 refused, 1-4 accepted, 5-8 and 5-6 refused, 5 alone refused and dropped
    assert [len(a.body["pdus"]) for a in peer.attempts][:5] == [8, 4, 4, 2, 1]
    assert sum("refused transaction" in r.getMessage() for r in caplog.records) == 1
    assert sender.backoff_until(peer.name) is None and await queued_rows(db) == 0


async def test_a_401_is_retried_not_dropped(peer: Peer, make_sender: SenderFactory) -> None:
    # 401: the destination could not check our signature (say, it failed to fetch our key).
    peer.script = [(401, {"errcode": "M_UNAUTHORIZED", "error": "no key"})]
    sender = make_sender()
    await sender.send_pdu([peer.name], pdu(1))
    await sender.start()
    await eventually(lambda: peer.pdus() == ["$e1"])
    assert peer.attempts[0].txn_id == peer.attempts[1].txn_id


async def test_pdu_cap_drops_the_oldest_pdus(db: Database, peer: Peer,
                                             make_sender: SenderFactory,
                                             caplog: pytest.LogCaptureFixture) -> None:
    sender = make_sender(max_queued_pdus=5)
    await sender.send_edu(peer.name, "m.direct_to_device", {"n": 0})
    with caplog.at_level(logging.WARNING, logger="myelin.federation"):
        for n in range(1, 9):
            await sender.send_pdu([peer.name], pdu(n))
    assert sender.queued(peer.name) == 6 and await queued_rows(db) == 6
    assert any("dropped the 1 oldest" in r.getMessage() for r in caplog.records)
    await sender.start()
    await eventually(lambda: sender.queued(peer.name) == 0 and len(peer.accepted) == 1)
    assert peer.pdus() == ["$e4", "$e5", "$e6", "$e7", "$e8"]
    assert [e["content"]["n"] for e in peer.edus()] == [0]
