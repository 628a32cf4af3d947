"""The keyring against real aiohttp servers on loopback, on SQLite and PostgreSQL.

Each remote homeserver holds its own ed25519 keys and serves ``/_matrix/key/v2/server``; a
notary serves ``/_matrix/key/v2/query`` from responses it holds. The keyring's ``fetch`` maps
server names to those servers' URLs, as the real federation client will map them to resolved
addresses, and counts every attempt so the tests can see what was (not) fetched.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import aiohttp
import nacl.signing
import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer, TestServer

from myelin.api.federation import keys as keys_api_module
from myelin.api.http.dispatch import Dispatcher
from myelin.config import RateLimitsConfig
from myelin.core.room_versions import V1, V3, V4, V5, V8, V12, RoomVersion
from myelin.core.signing import SignatureError, sign_event, sign_json, verify_json
from myelin.errors import MatrixError
from myelin.services.federation.keyring import (
    MAX_NOTARY_KEY_IDS,
    MAX_NOTARY_SERVERS,
    KeyNotFound,
    Keyring,
)
from myelin.services.ratelimit import RateLimiter
from myelin.signing_key import SigningKey
from myelin.storage.database import Database
from myelin.storage.migrations import migrate
from myelin.storage.stores.server_keys import ServerKeyStore

from conftest import open_database

HOUR = 3600 * 1000
DAY = 24 * HOUR
T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += ms


def new_key(version: str) -> SigningKey:
    return SigningKey(version, nacl.signing.SigningKey.generate())


class Remote:
    """A homeserver publishing its keys; ``respond`` may be replaced to misbehave."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name
        self.clock = clock
        self.keys = [new_key("k1")]
        self.old: dict[str, tuple[SigningKey, int]] = {}
        self.valid_for_ms = DAY
        self.hits = 0
        self.gate: asyncio.Event | None = None
        self.requested = asyncio.Event()
        self.respond: Callable[[], dict[str, Any]] = self.key_response
        self.server: TestServer | None = None

    @property
    def key(self) -> SigningKey:
        return self.keys[0]

    def key_response(self, signers: list[SigningKey] | None = None,
                     name: str | None = None) -> dict[str, Any]:
        response: dict[str, Any] = {
            "server_name": name or self.name,
            "verify_keys": {k.key_id: {"key": k.verify_key_base64} for k in self.keys},
            "old_verify_keys": {kid: {"key": k.verify_key_base64, "expired_ts": ts}
                                for kid, (k, ts) in self.old.items()},
            "valid_until_ts": self.clock.ms + self.valid_for_ms,
        }
        for k in self.keys if signers is None else signers:
            response = sign_json(response, self.name, k.signing_key, k.key_id)
        return response

    def sign(self, obj: dict[str, Any], key: SigningKey | None = None) -> dict[str, Any]:
        key = key or self.key
        return sign_json(obj, self.name, key.signing_key, key.key_id)

    def app(self) -> web.Application:
        async def server_keys(request: web.Request) -> web.Response:
            self.hits += 1
            self.requested.set()
            if self.gate is not None:
                await self.gate.wait()
            return web.json_response(self.respond())

        app = web.Application()
        app.router.add_get("/_matrix/key/v2/server", server_keys)
        return app


class Notary(Remote):
    """A notary: answers /query with the responses it holds, signed by itself."""

    def __init__(self, name: str, clock: Clock) -> None:
        super().__init__(name, clock)
        self.held: dict[str, list[dict[str, Any]]] = {}
        self.queries: list[Any] = []
        self.signing_key: SigningKey = self.key  # replace to forge

    def trusted(self) -> tuple[str, dict[str, str]]:
        return self.name, {self.key.key_id: self.key.verify_key_base64}

    def app(self) -> web.Application:
        async def query(request: web.Request) -> web.Response:
            self.queries.append(await request.json())
            answer = []
            for server in self.queries[-1]["server_keys"]:
                for response in self.held.get(server, []):
                    answer.append(sign_json(response, self.name, self.signing_key.signing_key,
                                            self.signing_key.key_id))
            return web.json_response({"server_keys": answer})

        app = super().app()
        app.router.add_post("/_matrix/key/v2/query", query)
        return app


R = TypeVar("R", bound=Remote)


class Network:
    def __init__(self, clock: Clock, session: aiohttp.ClientSession) -> None:
        self.clock = clock
        self.session = session
        self.servers: dict[str, Remote] = {}
        self.attempts: Counter[tuple[str, str]] = Counter()

    async def add(self, remote: R) -> R:
        remote.server = TestServer(remote.app(), host="127.0.0.1")
        await remote.server.start_server()
        self.servers[remote.name] = remote
        return remote

    async def take_down(self, remote: Remote) -> None:
        assert remote.server is not None
        await remote.server.close()

    async def fetch(self, server_name: str, method: str, path: str, body: Any | None) -> Any:
        self.attempts[(server_name, path)] += 1
        remote = self.servers.get(server_name)
        if remote is None or remote.server is None:
            raise ConnectionError(f"cannot resolve {server_name}")
        url = str(remote.server.make_url(path))
        async with self.session.request(method, url, json=body) as response:
            response.raise_for_status()
            return await response.json()

    def keyring(self, db: Database, notaries: list[Notary] | None = None,
                **kwargs: Any) -> Keyring:
        return Keyring(ServerKeyStore(db), OUR_KEY, "us.example", self.fetch,
                       [n.trusted() for n in notaries or []], clock=self.clock, **kwargs)


OUR_KEY = new_key("ours")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def net(clock: Clock) -> AsyncIterator[Network]:
    async with aiohttp.ClientSession() as session:
        network = Network(clock, session)
        yield network
        for remote in network.servers.values():
            if remote.server is not None:
                await remote.server.close()


@pytest.fixture
async def remote(net: Network, clock: Clock) -> Remote:
    return await net.add(Remote("remote.example", clock))


# -- direct fetches and caching ------------------------------------------------------------


async def test_direct_fetch_then_cache_hit(db: Database, net: Network, remote: Remote) -> None:
    keyring = net.keyring(db)
    for _ in range(3):
        key = await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
        assert bytes(key) == bytes(remote.key.signing_key.verify_key)
    assert remote.hits == 1


async def test_keys_persist_across_keyring_instances(db: Database, net: Network,
                                                     remote: Remote) -> None:
    await net.keyring(db).get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    fresh = net.keyring(db)
    key = await fresh.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=T0)
    assert bytes(key) == bytes(remote.key.signing_key.verify_key)
    assert remote.hits == 1
    stored = await ServerKeyStore(db).get_keys("remote.example")
    assert stored["ed25519:k1"].from_server == "remote.example"
    assert stored["ed25519:k1"].fetched_ts == T0


async def test_expired_validity_triggers_refetch(db: Database, net: Network, remote: Remote,
                                                 clock: Clock) -> None:
    remote.valid_for_ms = HOUR
    keyring = net.keyring(db)
    await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    clock.advance(HOUR + 1)
    # An event made while the key was valid needs no refetch ...
    await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=T0 + 10)
    assert remote.hits == 1
    # ... a request received now does.
    await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    assert remote.hits == 2


async def test_validity_is_capped_at_seven_days(db: Database, net: Network, remote: Remote,
                                                clock: Clock) -> None:
    remote.valid_for_ms = 365 * DAY
    keyring = net.keyring(db)
    await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    clock.advance(7 * DAY - 1)
    await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    assert remote.hits == 1
    clock.advance(2)
    await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    assert remote.hits == 2


async def test_key_that_stays_invalid_after_refetch(db: Database, net: Network,
                                                    remote: Remote) -> None:
    remote.valid_for_ms = HOUR
    keyring = net.keyring(db)
    with pytest.raises(KeyNotFound, match="valid only until"):
        await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=T0 + 2 * HOUR)


async def test_old_verify_keys_only_before_expired_ts(db: Database, net: Network,
                                                      remote: Remote) -> None:
    retired = new_key("old")
    remote.old = {retired.key_id: (retired, T0 - HOUR)}
    keyring = net.keyring(db)
    key = await keyring.get_verify_key("remote.example", "ed25519:old", valid_at_ms=T0 - HOUR - 1)
    assert bytes(key) == bytes(retired.signing_key.verify_key)
    # Room versions 1-4 ignore validity: valid_at_ms=0.
    await keyring.get_verify_key("remote.example", "ed25519:old", valid_at_ms=0)
    with pytest.raises(KeyNotFound, match="old key"):
        await keyring.get_verify_key("remote.example", "ed25519:old", valid_at_ms=T0 - HOUR)
    with pytest.raises(KeyNotFound, match="old key"):  # never for requests
        await keyring.get_verify_key("remote.example", "ed25519:old", valid_at_ms=None)
    assert remote.hits == 1  # an expired key stays expired: no refetch for it


async def test_unknown_key_id_and_bad_names_fail_cleanly(db: Database, net: Network,
                                                         remote: Remote) -> None:
    keyring = net.keyring(db)
    with pytest.raises(KeyNotFound, match="no key ed25519:nope"):
        await keyring.get_verify_key("remote.example", "ed25519:nope", valid_at_ms=None)
    with pytest.raises(KeyNotFound, match="not an ed25519 key ID"):
        await keyring.get_verify_key("remote.example", "rsa:x", valid_at_ms=None)
    with pytest.raises(KeyNotFound, match="not a valid server name"):
        await keyring.get_verify_key("bad name", "ed25519:k1", valid_at_ms=None)
    assert remote.hits == 1


# -- rejecting bad responses -------------------------------------------------------------


async def test_forged_self_signature_is_rejected(db: Database, net: Network,
                                                 remote: Remote) -> None:
    remote.respond = lambda: remote.key_response(signers=[new_key("k1")])
    with pytest.raises(KeyNotFound):
        await net.keyring(db).get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    assert await ServerKeyStore(db).get_keys("remote.example") == {}


async def test_response_must_be_signed_by_every_verify_key(db: Database, net: Network,
                                                           remote: Remote) -> None:
    remote.keys.append(new_key("k2"))
    remote.respond = lambda: remote.key_response(signers=[remote.keys[0]])
    with pytest.raises(KeyNotFound):
        await net.keyring(db).get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)


async def test_response_for_another_server_is_rejected(db: Database, net: Network,
                                                       remote: Remote) -> None:
    remote.respond = lambda: remote.key_response(name="evil.example")
    with pytest.raises(KeyNotFound):
        await net.keyring(db).get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    assert await ServerKeyStore(db).get_keys("evil.example") == {}


@pytest.mark.parametrize("breakage", [
    lambda r: r.pop("valid_until_ts"),
    lambda r: r.update(valid_until_ts="soon"),
    lambda r: r.update(verify_keys=[]),
    lambda r: r.update(verify_keys={}),
    lambda r: r["verify_keys"]["ed25519:k1"].update(key="!!"),
    lambda r: r["verify_keys"]["ed25519:k1"].update(key="AAAA"),
    lambda r: r.update(old_verify_keys={"ed25519:o": {"key": "AAAA"}}),
])
async def test_malformed_responses_are_rejected(db: Database, net: Network, remote: Remote,
                                                breakage: Callable[[dict[str, Any]], Any]
                                                ) -> None:
    def respond() -> dict[str, Any]:
        response = remote.key_response(signers=[])
        breakage(response)
        return remote.sign(response)

    remote.respond = respond
    with pytest.raises(KeyNotFound):
        await net.keyring(db).get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)


# -- notaries ------------------------------------------------------------------------------


async def test_notary_fallback_when_the_server_is_down(db: Database, net: Network,
                                                       remote: Remote, clock: Clock) -> None:
    notary = await net.add(Notary("notary.example", clock))
    notary.held["remote.example"] = [remote.key_response()]
    await net.take_down(remote)
    keyring = net.keyring(db, [notary])
    key = await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    assert bytes(key) == bytes(remote.key.signing_key.verify_key)
    assert notary.queries == [{"server_keys": {"remote.example": {
        "ed25519:k1": {"minimum_valid_until_ts": T0}}}}]
    stored = await ServerKeyStore(db).get_keys("remote.example")
    assert stored["ed25519:k1"].from_server == "notary.example"


async def test_event_lookup_asks_notary_for_keys_valid_at_the_event(
        db: Database, net: Network, remote: Remote, clock: Clock) -> None:
    notary = await net.add(Notary("notary.example", clock))
    notary.held["remote.example"] = [remote.key_response()]
    await net.take_down(remote)
    await net.keyring(db, [notary]).get_verify_key("remote.example", "ed25519:k1",
                                                   valid_at_ms=T0 - 5)
    assert notary.queries[0]["server_keys"]["remote.example"]["ed25519:k1"] == {
        "minimum_valid_until_ts": T0 - 5}


async def test_notary_with_a_bad_signature_is_rejected(db: Database, net: Network,
                                                       remote: Remote, clock: Clock) -> None:
    liar = await net.add(Notary("liar.example", clock))
    liar.held["remote.example"] = [remote.key_response()]
    liar.signing_key = SigningKey(liar.key.version, nacl.signing.SigningKey.generate())
    honest = await net.add(Notary("honest.example", clock))
    await net.take_down(remote)
    with pytest.raises(KeyNotFound):
        await net.keyring(db, [liar]).get_verify_key("remote.example", "ed25519:k1",
                                                     valid_at_ms=None)
    # The next configured notary is tried after a bad one.
    honest.held["remote.example"] = [remote.key_response()]
    keyring = net.keyring(db, [liar, honest])
    await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    assert (await ServerKeyStore(db).get_keys("remote.example"))["ed25519:k1"].from_server \
        == "honest.example"


async def test_notary_cannot_vouch_for_a_forged_response(db: Database, net: Network,
                                                         remote: Remote, clock: Clock) -> None:
    """A notary's signature is not enough: the response must be the server's own."""
    notary = await net.add(Notary("notary.example", clock))
    impostor = new_key("k1")
    notary.held["remote.example"] = [{**remote.key_response(signers=[]), "verify_keys": {
        "ed25519:k1": {"key": impostor.verify_key_base64}}}]
    notary.held["remote.example"][0] = sign_json(notary.held["remote.example"][0],
                                                 "remote.example", impostor.signing_key,
                                                 "ed25519:k2")
    await net.take_down(remote)
    with pytest.raises(KeyNotFound):
        await net.keyring(db, [notary]).get_verify_key("remote.example", "ed25519:k1",
                                                       valid_at_ms=None)


# -- concurrency and negative caching ----------------------------------------------------


async def test_concurrent_lookups_share_one_fetch(db: Database, net: Network,
                                                  remote: Remote) -> None:
    remote.gate = asyncio.Event()
    keyring = net.keyring(db)
    lookups = [asyncio.create_task(keyring.get_verify_key("remote.example", "ed25519:k1",
                                                          valid_at_ms=None))
               for _ in range(10)]
    await remote.requested.wait()
    remote.gate.set()
    keys = await asyncio.gather(*lookups)
    assert len({bytes(k) for k in keys}) == 1
    assert remote.hits == 1


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch(db: Database, net: Network,
                                                                 remote: Remote) -> None:
    remote.gate = asyncio.Event()
    keyring = net.keyring(db)
    first = asyncio.create_task(keyring.get_verify_key("remote.example", "ed25519:k1",
                                                       valid_at_ms=None))
    second = asyncio.create_task(keyring.get_verify_key("remote.example", "ed25519:k1",
                                                        valid_at_ms=None))
    await remote.requested.wait()
    first.cancel()
    remote.gate.set()
    await second
    assert remote.hits == 1


async def test_dead_server_is_negatively_cached(db: Database, net: Network, remote: Remote,
                                                clock: Clock) -> None:
    await net.take_down(remote)
    keyring = net.keyring(db)
    attempts = ("remote.example", "/_matrix/key/v2/server")
    with pytest.raises(KeyNotFound):
        await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    assert net.attempts[attempts] == 1
    with pytest.raises(KeyNotFound, match="recently failed"):
        await keyring.get_verify_key("remote.example", "ed25519:k2", valid_at_ms=None)
    assert net.attempts[attempts] == 1
    clock.advance(60_001)
    with pytest.raises(KeyNotFound):
        await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    assert net.attempts[attempts] == 2


async def test_slow_server_times_out(db: Database, net: Network, remote: Remote) -> None:
    remote.gate = asyncio.Event()  # never set
    keyring = net.keyring(db, fetch_timeout_s=0.2)
    with pytest.raises(KeyNotFound):
        await keyring.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)


# -- checking signatures --------------------------------------------------------------------


async def test_verify_json_for_server(db: Database, net: Network, remote: Remote) -> None:
    keyring = net.keyring(db)
    signed = remote.sign({"hello": "world"})
    await keyring.verify_json_for_server("remote.example", signed, valid_at_ms=None)
    with pytest.raises(SignatureError):
        await keyring.verify_json_for_server("remote.example", {**signed, "hello": "there"},
                                             valid_at_ms=None)
    with pytest.raises(SignatureError, match="not signed by"):
        await keyring.verify_json_for_server("other.example", signed, valid_at_ms=None)
    # Signatures from keys that cannot be found are skipped; one good one suffices ...
    extra = sign_json(signed, "remote.example", new_key("gone").signing_key, "ed25519:gone")
    await keyring.verify_json_for_server("remote.example", extra, valid_at_ms=None)
    # ... but there must be one.
    only_unknown = sign_json({"a": 1}, "remote.example", new_key("gone").signing_key,
                             "ed25519:gone")
    with pytest.raises(KeyNotFound, match="no usable key"):
        await keyring.verify_json_for_server("remote.example", only_unknown, valid_at_ms=None)
    # Unknown algorithms are removed before looking (appendices, step 2).
    with pytest.raises(SignatureError, match="no ed25519"):
        await keyring.verify_json_for_server(
            "remote.example", {"signatures": {"remote.example": {"rsa:1": "x"}}},
            valid_at_ms=None)


def message_event(room_version: RoomVersion, sender: str, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "m.room.message", "sender": sender, "room_id": "!r:remote.example",
        "content": {"body": "hi"}, "origin_server_ts": T0, "depth": 3,
        "prev_events": [], "auth_events": [], **extra,
    }
    if room_version is V1:
        event.setdefault("event_id", "$abc:" + sender.partition(":")[2])
    return event


def signed_event(remote: Remote, room_version: RoomVersion, event: dict[str, Any]
                 ) -> dict[str, Any]:
    return sign_event(event, room_version, remote.name, remote.key.signing_key,
                      remote.key.key_id)


@pytest.mark.parametrize("room_version", [V3, V4, V5, V12])
async def test_event_signed_by_the_sender(db: Database, net: Network, remote: Remote,
                                          room_version: RoomVersion) -> None:
    keyring = net.keyring(db)
    event = signed_event(remote, room_version, message_event(room_version, "@a:remote.example"))
    await keyring.verify_event_signatures(event, room_version)
    # The check runs on the redacted event: a redacted copy passes too.
    await keyring.verify_event_signatures({**event, "content": {}}, room_version)
    with pytest.raises(SignatureError):
        await keyring.verify_event_signatures({**event, "sender": "@b:remote.example"},
                                              room_version)
    # Signed by the wrong server for its sender.
    with pytest.raises(SignatureError, match=r"not signed by other\.example"):
        await keyring.verify_event_signatures({**event, "sender": "@a:other.example"},
                                              room_version)


async def test_key_validity_only_from_room_version_5(db: Database, net: Network,
                                                     remote: Remote) -> None:
    remote.valid_for_ms = HOUR
    keyring = net.keyring(db)
    late = T0 + 2 * HOUR
    for room_version in (V4, V5):
        event = signed_event(remote, room_version, {
            **message_event(room_version, "@a:remote.example"), "origin_server_ts": late})
        if room_version.enforce_key_validity:
            with pytest.raises(KeyNotFound, match="valid only until"):
                await keyring.verify_event_signatures(event, room_version)
        else:
            await keyring.verify_event_signatures(event, room_version)


async def test_room_v1_needs_the_event_id_server_too(db: Database, net: Network, remote: Remote,
                                                     clock: Clock) -> None:
    other = await net.add(Remote("other.example", clock))
    keyring = net.keyring(db)
    event = message_event(V1, "@a:remote.example", event_id="$x:other.example")
    only_sender = signed_event(remote, V1, event)
    with pytest.raises(SignatureError, match=r"not signed by other\.example"):
        await keyring.verify_event_signatures(only_sender, V1)
    both = sign_event(only_sender, V1, other.name, other.key.signing_key, other.key.key_id)
    # sign_event recomputes the hash over the same content: the sender's signature still holds
    await keyring.verify_event_signatures(both, V1)


async def test_third_party_invite_needs_no_sender_signature(db: Database, net: Network,
                                                            remote: Remote) -> None:
    keyring = net.keyring(db)
    invite = {
        **message_event(V12, "@a:elsewhere.example"), "type": "m.room.member",
        "state_key": "@b:remote.example",
        "content": {"membership": "invite", "third_party_invite": {"signed": {}}},
    }
    await keyring.verify_event_signatures(invite, V12)
    plain = {**invite, "content": {"membership": "invite"}}
    with pytest.raises(SignatureError, match=r"not signed by elsewhere\.example"):
        await keyring.verify_event_signatures(plain, V12)


async def test_restricted_join_needs_the_authorising_server(db: Database, net: Network,
                                                            remote: Remote,
                                                            clock: Clock) -> None:
    resident = await net.add(Remote("resident.example", clock))
    keyring = net.keyring(db)
    join = {
        **message_event(V8, "@a:remote.example"), "type": "m.room.member",
        "state_key": "@a:remote.example",
        "content": {"membership": "join",
                    "join_authorised_via_users_server": "@mod:resident.example"},
    }
    joiner_signed = signed_event(remote, V8, join)
    with pytest.raises(SignatureError, match=r"not signed by resident\.example"):
        await keyring.verify_event_signatures(joiner_signed, V8)
    both = sign_event(joiner_signed, V8, resident.name, resident.key.signing_key,
                      resident.key.key_id)
    await keyring.verify_event_signatures(both, V8)


async def test_event_with_malformed_sender_or_timestamp(db: Database, net: Network,
                                                        remote: Remote) -> None:
    keyring = net.keyring(db)
    event = signed_event(remote, V12, message_event(V12, "@a:remote.example"))
    with pytest.raises(SignatureError, match="names no valid server"):
        await keyring.verify_event_signatures({**event, "sender": "nobody"}, V12)
    with pytest.raises(SignatureError, match="origin_server_ts"):
        await keyring.verify_event_signatures({**event, "origin_server_ts": "now"}, V12)


# -- our own keys -----------------------------------------------------------------------------


async def test_own_key_response(db: Database, net: Network, clock: Clock) -> None:
    retired = new_key("retired")
    keyring = net.keyring(db, old_verify_keys={
        retired.key_id: (retired.verify_key_base64, T0 - DAY)})
    response = keyring.own_key_response(HOUR)
    assert response["server_name"] == "us.example"
    assert response["verify_keys"] == {OUR_KEY.key_id: {"key": OUR_KEY.verify_key_base64}}
    assert response["old_verify_keys"] == {
        "ed25519:retired": {"key": retired.verify_key_base64, "expired_ts": T0 - DAY}}
    assert response["valid_until_ts"] == T0 + HOUR
    verify_json(response, "us.example", OUR_KEY.key_id, OUR_KEY.signing_key.verify_key,
                strict=True)
    assert keyring.own_key_response()["valid_until_ts"] == T0 + DAY
    # Our own keys are never fetched.
    assert bytes(await keyring.get_verify_key("us.example", OUR_KEY.key_id, valid_at_ms=None)) \
        == bytes(OUR_KEY.signing_key.verify_key)
    await keyring.get_verify_key("us.example", "ed25519:retired", valid_at_ms=T0 - DAY - 1)
    with pytest.raises(KeyNotFound):
        await keyring.get_verify_key("us.example", "ed25519:retired", valid_at_ms=None)
    assert not net.attempts


# -- answering as a notary -----------------------------------------------------------------


def check_notarised(response: dict[str, Any], remote: Remote) -> None:
    verify_json(response, "us.example", OUR_KEY.key_id, OUR_KEY.signing_key.verify_key)
    verify_json(response, remote.name, remote.key.key_id, remote.key.signing_key.verify_key)


async def test_notary_response_fetches_caches_and_countersigns(
        db: Database, net: Network, remote: Remote, clock: Clock) -> None:
    remote.valid_for_ms = 4 * HOUR
    keyring = net.keyring(db)
    answer = await keyring.notary_response({"remote.example": {}})
    [response] = answer["server_keys"]
    check_notarised(response, remote)
    assert response["valid_until_ts"] == T0 + 4 * HOUR
    # Cached for half its lifetime ...
    clock.advance(2 * HOUR - 1)
    await keyring.notary_response({"remote.example": {"ed25519:k1": {}}})
    assert remote.hits == 1
    # ... then refreshed.
    clock.advance(1)
    [response] = (await keyring.notary_response({"remote.example": {}}))["server_keys"]
    assert remote.hits == 2 and response["valid_until_ts"] == T0 + 6 * HOUR


async def test_notary_refreshes_for_minimum_valid_until_ts(db: Database, net: Network,
                                                           remote: Remote) -> None:
    keyring = net.keyring(db)
    await keyring.notary_response({"remote.example": {}})
    await keyring.notary_response(
        {"remote.example": {"ed25519:k1": {"minimum_valid_until_ts": T0 + DAY - 1}}})
    assert remote.hits == 1
    await keyring.notary_response(
        {"remote.example": {"ed25519:k1": {"minimum_valid_until_ts": T0 + DAY + 1}}})
    assert remote.hits == 2
    await keyring.notary_response({"remote.example": {}}, minimum_valid_until_ts=T0 + 2 * DAY)
    assert remote.hits == 3


async def test_notary_serves_the_last_response_when_the_server_is_down(
        db: Database, net: Network, remote: Remote, clock: Clock) -> None:
    keyring = net.keyring(db)
    await keyring.notary_response({"remote.example": {}})
    await net.take_down(remote)
    clock.advance(2 * DAY)
    [response] = (await keyring.notary_response({"remote.example": {}}))["server_keys"]
    check_notarised(response, remote)
    assert response["valid_until_ts"] == T0 + DAY


async def test_notary_answer_shapes(db: Database, net: Network, remote: Remote,
                                    clock: Clock) -> None:
    keyring = net.keyring(db)
    assert await keyring.notary_response({}) == {"server_keys": []}
    # Unreachable servers without cached keys are left out.
    answer = await keyring.notary_response({"remote.example": {}, "nowhere.example": {},
                                            "not a name": {}})
    assert [r["server_name"] for r in answer["server_keys"]] == ["remote.example"]
    # Asking about us returns our own response.
    [ours] = (await keyring.notary_response({"us.example": {}}))["server_keys"]
    assert ours["verify_keys"] == {OUR_KEY.key_id: {"key": OUR_KEY.verify_key_base64}}
    bad: Any
    for bad in ([], {"remote.example": []}, {"remote.example": {"ed25519:k1": 5}}):
        with pytest.raises(MatrixError) as raised:
            await keyring.notary_response(bad)
        assert raised.value.errcode == "M_BAD_JSON"


async def test_notary_does_not_refetch_for_unknown_key_ids_every_time(
        db: Database, net: Network, remote: Remote) -> None:
    keyring = net.keyring(db)
    for _ in range(3):
        answer = await keyring.notary_response({"remote.example": {"ed25519:nope": {}}})
        assert answer == {"server_keys": []}
    assert remote.hits == 1
    # ... and that does not stop keys being fetched to verify the server's own requests.
    remote.keys.append(new_key("k2"))
    await keyring.get_verify_key("remote.example", "ed25519:k2", valid_at_ms=None)
    assert remote.hits == 2


# -- the HTTP endpoints (myelin.api.federation.keys) -------------------------------------


@pytest.fixture
async def keys_api(db: Database, net: Network) -> AsyncIterator[tuple[Keyring, RawTestServer]]:
    """Our key endpoints behind the real dispatcher, with ``services.keyring`` only."""
    keyring = net.keyring(db)
    dispatcher = Dispatcher(
        keys_api_module.routes.endpoints, cast(Any, SimpleNamespace(keyring=keyring)),
        rate_limiter=RateLimiter(RateLimitsConfig()), max_body_bytes=65536,
        trust_x_forwarded=False, log_access=False,
    )
    server = RawTestServer(dispatcher.handle, host="127.0.0.1")
    await server.start_server()
    try:
        yield keyring, server
    finally:
        await server.close()


async def test_key_endpoints(keys_api: tuple[Keyring, RawTestServer], net: Network,
                             remote: Remote) -> None:
    _, server = keys_api
    session = net.session
    async with session.get(server.make_url("/_matrix/key/v2/server")) as response:
        assert response.status == 200
        ours = await response.json()
    verify_json(ours, "us.example", OUR_KEY.key_id, OUR_KEY.signing_key.verify_key)
    assert ours["valid_until_ts"] == T0 + DAY

    url = server.make_url("/_matrix/key/v2/query/remote.example")
    async with session.get(url, params={"minimum_valid_until_ts": str(T0)}) as response:
        [relayed] = (await response.json())["server_keys"]
    check_notarised(relayed, remote)

    body = {"server_keys": {"remote.example": {"ed25519:k1": {"minimum_valid_until_ts": T0}},
                            "us.example": {}}}
    async with session.post(server.make_url("/_matrix/key/v2/query"), json=body) as response:
        answer = await response.json()
    assert sorted(r["server_name"] for r in answer["server_keys"]) == [
        "remote.example", "us.example"]
    assert remote.hits == 1

    for bad, errcode in (({"server_keys": []}, "M_BAD_JSON"), ({}, "M_BAD_JSON"),
                         (None, "M_NOT_JSON")):
        async with session.post(server.make_url("/_matrix/key/v2/query"),
                                json=bad) as response:
            assert response.status == 400
            assert (await response.json())["errcode"] == errcode
    async with session.get(url, params={"minimum_valid_until_ts": "soon"}) as response:
        assert response.status == 400


async def test_key_relayed_by_our_notary_verifies_for_its_client(
        keys_api: tuple[Keyring, RawTestServer], net: Network, remote: Remote, clock: Clock,
        tmp_path: Path) -> None:
    """End to end: another server trusting us as its notary accepts what our endpoint says,
    while the server itself is down."""
    keyring, server = keys_api
    await keyring.notary_response({"remote.example": {}})
    await net.take_down(remote)
    us = Remote("us.example", clock)
    us.keys = [OUR_KEY]
    us.server = cast(Any, server)
    net.servers["us.example"] = us
    client_db = await open_database("sqlite", tmp_path / "client")
    try:
        await migrate(client_db)
        client = Keyring(ServerKeyStore(client_db), new_key("c"), "client.example", net.fetch,
                         [("us.example", {OUR_KEY.key_id: OUR_KEY.verify_key_base64})],
                         clock=clock)
        key = await client.get_verify_key("remote.example", "ed25519:k1", valid_at_ms=None)
    finally:
        await client_db.close()
    assert bytes(key) == bytes(remote.key.signing_key.verify_key)
    assert net.attempts[("us.example", "/_matrix/key/v2/query")] == 1


async def test_notary_refuses_queries_past_its_limits(db: Database, net: Network,
                                                      remote: Remote) -> None:
    keyring = net.keyring(db)
    too_many_servers = {f"s{i}.example": {} for i in range(MAX_NOTARY_SERVERS + 1)}
    too_many_keys = {"remote.example": {f"ed25519:k{i}": {}
                                        for i in range(MAX_NOTARY_KEY_IDS + 1)}}
    for query in (too_many_servers, too_many_keys):
        with pytest.raises(MatrixError) as refused:
            await keyring.notary_response(query)
        assert (refused.value.status, refused.value.errcode) == (400, "M_INVALID_PARAM")
    assert remote.hits == 0
