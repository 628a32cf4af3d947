"""ServerResolver, step by step (server-server API, "Resolving server names").

``/.well-known/matrix/server`` is served by a real aiohttp HTTPS server on loopback with a
certificate generated here; names like ``hs.example.test`` reach it through a static aiohttp
resolver and ``well_known_port``. DNS SRV answers come from the injectable ``srv_lookup``.
(Named ``test_server_discovery`` because ``tests/api/client/test_discovery.py`` exists and the
test tree has no ``__init__.py`` files, so basenames must be unique.)
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import random
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.message
import dns.rcode
import dns.rrset
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from myelin.services.federation.discovery import (
    Destination,
    DnsSrvLookup,
    InvalidServerName,
    ServerResolver,
    SrvRecord,
    WellKnownResponse,
    cache_period,
    pick_srv,
)

HOUR = 3600.0
DELEGATED = b'{"m.server": "delegated.example.test:1234"}'


def make_cert(directory: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for *.example.test, 127.0.0.1 and ::1: (cert, key, PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "myelin test")])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [
        x509.DNSName("*.example.test"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, pem.decode()


class StaticResolver(AbstractResolver):
    """Every name resolves to 127.0.0.1 (names under .invalid do not resolve)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host.endswith(".invalid"):
            raise OSError("no such host")
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


@dataclass
class WellKnownServer:
    port: int
    ca_pem: str
    status: int = 200
    body: bytes = DELEGATED
    headers: dict[str, str] = field(default_factory=dict)
    redirect: str | None = None
    hits: list[str] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def server(cert: tuple[Path, Path, str]) -> AsyncIterator[WellKnownServer]:
    state = WellKnownServer(port=0, ca_pem=cert[2])

    async def well_known(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path)
        if state.redirect is not None:
            raise web.HTTPFound(state.redirect)
        return web.Response(status=state.status, body=state.body, headers=state.headers)

    async def moved(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path)
        return web.Response(body=b'{"m.server": "moved.example.test:443"}')

    async def loop(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path)
        raise web.HTTPFound("/loop")

    app = web.Application()
    app.router.add_get("/.well-known/matrix/server", well_known)
    app.router.add_get("/moved", moved)
    app.router.add_get("/loop", loop)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert[0], cert[1])
    tls.sni_callback = lambda _sock, name, _ctx: state.sni.append(name)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state
    await runner.cleanup()


class FakeSrv:
    """SRV answers by name; every query is recorded."""

    def __init__(self, records: dict[str, list[SrvRecord]] | None = None) -> None:
        self.records = records or {}
        self.queries: list[str] = []
        self.fail: set[str] = set()

    async def __call__(self, name: str) -> list[SrvRecord]:
        self.queries.append(name)
        if name in self.fail:
            raise TimeoutError
        return self.records.get(name, [])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def make_resolver(
    server: WellKnownServer,
) -> AsyncIterator[Callable[..., ServerResolver]]:
    made: list[ServerResolver] = []

    def factory(**kwargs: object) -> ServerResolver:
        options: dict[str, object] = {
            "srv_lookup": FakeSrv(),
            "ssl_context": server.trust(),
            "allow_private_destinations": True,
            "dns_resolver": StaticResolver(),
            "well_known_port": server.port,
        }
        options.update(kwargs)
        resolver = ServerResolver(**options)  # type: ignore[arg-type]
        made.append(resolver)
        return resolver

    yield factory
    for resolver in made:
        await resolver.close()


async def _never(_hostname: str) -> WellKnownResponse:
    raise AssertionError("no well-known request may be made for this server name")


# -- steps 1 and 2: no well-known, no DNS --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "host", "port", "host_header"),
    [
        ("192.0.2.7", "192.0.2.7", 8448, "192.0.2.7"),
        ("192.0.2.7:8000", "192.0.2.7", 8000, "192.0.2.7:8000"),
        ("[2001:db8::1]", "2001:db8::1", 8448, "[2001:db8::1]"),
        ("[2001:db8::1]:9000", "2001:db8::1", 9000, "[2001:db8::1]:9000"),
    ],
)
async def test_step1_ip_literal(name: str, host: str, port: int, host_header: str) -> None:
    srv = FakeSrv()
    resolver = ServerResolver(srv_lookup=srv, well_known_getter=_never)
    dest = await resolver.resolve(name)
    assert dest == Destination(host, port, host_header, name)
    assert dest.step == "1"
    assert dest.tls_name == host and dest.sni is None  # certificate for the IP, no SNI
    assert srv.queries == []


async def test_step2_hostname_with_port() -> None:
    srv = FakeSrv({"_matrix-fed._tcp.example.test": [("other.test", 1, 0, 0)]})
    resolver = ServerResolver(srv_lookup=srv, well_known_getter=_never)
    dest = await resolver.resolve("example.test:8449")
    assert dest == Destination("example.test", 8449, "example.test:8449", "example.test:8449")
    assert (dest.step, dest.tls_name, dest.sni) == ("2", "example.test", "example.test")
    assert srv.queries == []


@pytest.mark.parametrize(
    "name",
    [
        "",
        "exa mple.test",
        "example.test:0",
        "example.test:65536",
        "example.test:",
        "[not-ipv6]",
        "[::1]x",
        "a" * 256,
        "ex_ample.test",
        "host:12:34",
        "@user:example.test",
    ],
)
async def test_invalid_server_names_rejected(name: str) -> None:
    resolver = ServerResolver(srv_lookup=FakeSrv(), well_known_getter=_never)
    with pytest.raises(InvalidServerName):
        await resolver.resolve(name)


# -- step 3: well-known over real HTTPS ------------------------------------------------------


async def test_step3_2_delegated_host_and_port(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    dest = await make_resolver().resolve("hs.example.test")
    assert dest == Destination(
        "delegated.example.test", 1234, "delegated.example.test:1234", "hs.example.test"
    )
    assert (dest.step, dest.tls_name) == ("3.2", "delegated.example.test")
    assert server.hits == ["/.well-known/matrix/server"]
    assert server.sni == ["hs.example.test"]  # the well-known fetch itself uses SNI


@pytest.mark.parametrize(
    ("m_server", "host", "port", "host_header"),
    [
        ("192.0.2.9", "192.0.2.9", 8448, "192.0.2.9"),
        ("192.0.2.9:7000", "192.0.2.9", 7000, "192.0.2.9:7000"),
        ("[2001:db8::9]", "2001:db8::9", 8448, "[2001:db8::9]"),
        ("[2001:db8::9]:7000", "2001:db8::9", 7000, "[2001:db8::9]:7000"),
    ],
)
async def test_step3_1_delegated_ip_literal(
    server: WellKnownServer,
    make_resolver: Callable[..., ServerResolver],
    m_server: str,
    host: str,
    port: int,
    host_header: str,
) -> None:
    server.body = f'{{"m.server": "{m_server}"}}'.encode()
    srv = FakeSrv()
    dest = await make_resolver(srv_lookup=srv).resolve("hs.example.test")
    assert dest == Destination(host, port, host_header, "hs.example.test")
    assert (dest.step, dest.sni) == ("3.1", None)
    assert srv.queries == []


async def test_step3_3_srv_for_delegated_host(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    server.body = b'{"m.server": "delegated.example.test"}'
    srv = FakeSrv(
        {
            "_matrix-fed._tcp.delegated.example.test": [("fed.example.test.", 8555, 10, 0)],
            "_matrix._tcp.delegated.example.test": [("old.example.test", 1, 0, 0)],
        }
    )
    dest = await make_resolver(srv_lookup=srv).resolve("hs.example.test")
    assert dest == Destination(
        "fed.example.test", 8555, "delegated.example.test", "hs.example.test"
    )
    assert (dest.step, dest.tls_name) == ("3.3", "delegated.example.test")
    assert srv.queries == ["_matrix-fed._tcp.delegated.example.test"]


async def test_step3_4_deprecated_srv_for_delegated_host(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    server.body = b'{"m.server": "delegated.example.test"}'
    srv = FakeSrv({"_matrix._tcp.delegated.example.test": [("old.example.test", 8666, 0, 0)]})
    dest = await make_resolver(srv_lookup=srv).resolve("hs.example.test")
    assert dest == Destination(
        "old.example.test", 8666, "delegated.example.test", "hs.example.test"
    )
    assert dest.step == "3.4"
    assert srv.queries == [
        "_matrix-fed._tcp.delegated.example.test",
        "_matrix._tcp.delegated.example.test",
    ]


async def test_step3_5_delegated_host_on_8448(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    server.body = b'{"m.server": "delegated.example.test"}'
    dest = await make_resolver().resolve("hs.example.test")
    assert dest == Destination(
        "delegated.example.test", 8448, "delegated.example.test", "hs.example.test"
    )
    assert dest.step == "3.5"


async def test_well_known_json_accepted_whatever_the_content_type(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    server.headers = {"Content-Type": "text/plain"}
    dest = await make_resolver().resolve("hs.example.test")
    assert dest.step == "3.2"


async def test_well_known_redirects_followed(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    server.redirect = "/moved"
    dest = await make_resolver().resolve("hs.example.test")
    assert dest == Destination(
        "moved.example.test", 443, "moved.example.test:443", "hs.example.test"
    )
    assert server.hits == ["/.well-known/matrix/server", "/moved"]


@pytest.mark.parametrize("redirect", ["/loop", "http://hs.example.test/moved"])
async def test_well_known_redirect_loop_or_plain_http_is_an_error(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver], redirect: str
) -> None:
    server.redirect = redirect
    dest = await make_resolver().resolve("hs.example.test")
    assert dest == Destination("hs.example.test", 8448, "hs.example.test", "hs.example.test")
    assert dest.step == "6"
    assert len(server.hits) <= 3


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, DELEGATED),
        (500, DELEGATED),
        (200, b"not json"),
        (200, b"[]"),
        (200, b"{}"),
        (200, b'{"m.server": 5}'),
        (200, b'{"m.server": "bad name!"}'),
        (200, b'{"m.server": "host:99999"}'),
        (200, b"x" * 60_000),
    ],
)
async def test_invalid_well_known_skips_to_step4(
    server: WellKnownServer,
    make_resolver: Callable[..., ServerResolver],
    status: int,
    body: bytes,
) -> None:
    server.status, server.body = status, body
    srv = FakeSrv({"_matrix-fed._tcp.hs.example.test": [("fed.example.test", 8500, 0, 0)]})
    dest = await make_resolver(srv_lookup=srv).resolve("hs.example.test")
    assert dest == Destination("fed.example.test", 8500, "hs.example.test", "hs.example.test")
    assert (dest.step, dest.tls_name) == ("4", "hs.example.test")


async def test_step5_deprecated_srv_then_step6(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    server.status = 404
    srv = FakeSrv({"_matrix._tcp.hs.example.test": [("old.example.test", 8600, 0, 0)]})
    dest = await make_resolver(srv_lookup=srv).resolve("hs.example.test")
    assert dest == Destination("old.example.test", 8600, "hs.example.test", "hs.example.test")
    assert dest.step == "5"
    assert srv.queries == ["_matrix-fed._tcp.hs.example.test", "_matrix._tcp.hs.example.test"]

    dest = await make_resolver().resolve("hs.example.test")
    assert (dest.host, dest.port, dest.host_header, dest.step) == (
        "hs.example.test",
        8448,
        "hs.example.test",
        "6",
    )


async def test_srv_dot_target_means_no_service_and_failures_fall_through(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    server.status = 404
    srv = FakeSrv(
        {
            "_matrix-fed._tcp.hs.example.test": [(".", 0, 0, 0)],
            "_matrix._tcp.hs.example.test": [("old.example.test", 8600, 0, 0)],
        }
    )
    resolver = make_resolver(srv_lookup=srv)
    assert (await resolver.resolve("hs.example.test")).step == "5"

    srv.fail = {"_matrix-fed._tcp.b.example.test", "_matrix._tcp.b.example.test"}
    assert (await resolver.resolve("b.example.test")).step == "6"
    await resolver.resolve("b.example.test")
    # Failed queries are not cached; answered ones (even empty) are.
    assert srv.queries.count("_matrix-fed._tcp.b.example.test") == 2
    assert srv.queries.count("_matrix-fed._tcp.hs.example.test") == 1


async def test_tls_is_verified_for_well_known(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    # The OS trust store does not know our self-signed certificate: an error response.
    dest = await make_resolver(ssl_context=None).resolve("hs.example.test")
    assert dest.step == "6"
    # Nor is the certificate valid for a name outside *.example.test.
    dest = await make_resolver().resolve("example.other")
    assert dest.step == "6"
    # verify_tls=False accepts it (testing only).
    dest = await make_resolver(ssl_context=None, verify_tls=False).resolve("hs.example.test")
    assert dest.step == "3.2"


async def test_well_known_refuses_private_addresses_by_default(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    dest = await make_resolver(allow_private_destinations=False).resolve("hs.example.test")
    assert dest.step == "6"
    assert server.hits == []  # 127.0.0.1 was refused before any connection


# -- caching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({"Cache-Control": "public, max-age=600"}, 600.0),
        ({}, 24 * HOUR),  # the spec's default
        ({"Cache-Control": "max-age=1000000"}, 48 * HOUR),  # the cap
        ({"Cache-Control": "no-cache"}, 300.0),  # our floor
        (
            {"Date": "Mon, 01 Jan 2024 00:00:00 GMT", "Expires": "Mon, 01 Jan 2024 02:00:00 GMT"},
            2 * HOUR,
        ),
    ],
)
async def test_well_known_cached_per_headers(
    server: WellKnownServer,
    make_resolver: Callable[..., ServerResolver],
    headers: dict[str, str],
    lifetime: float,
) -> None:
    server.headers = headers
    clock = Clock()
    resolver = make_resolver(clock=clock)
    await resolver.resolve("hs.example.test")
    clock.now += lifetime - 1
    await resolver.resolve("hs.example.test")
    assert len(server.hits) == 1
    clock.now += 2
    await resolver.resolve("hs.example.test")
    assert len(server.hits) == 2


async def test_errors_cached_with_exponential_backoff(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    server.status = 404
    clock = Clock()
    resolver = make_resolver(clock=clock)
    expected_hits = 0
    for backoff in (300.0, 600.0, 1200.0, 2400.0, 3600.0, 3600.0):
        await resolver.resolve("hs.example.test")
        expected_hits += 1
        clock.now += backoff - 1
        assert (await resolver.resolve("hs.example.test")).step == "6"
        assert len(server.hits) == expected_hits
        clock.now += 2
    # Success resets the back-off; the next failure is cached for 5 minutes again.
    server.status = 200
    assert (await resolver.resolve("hs.example.test")).step == "3.2"
    server.status = 404
    clock.now += 24 * HOUR + 1
    await resolver.resolve("hs.example.test")
    clock.now += 301
    await resolver.resolve("hs.example.test")
    assert len(server.hits) == expected_hits + 3


async def test_cache_is_per_hostname_case_insensitive(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    resolver = make_resolver()
    await resolver.resolve("hs.example.test")
    await resolver.resolve("HS.example.TEST")
    await resolver.resolve("other.example.test")
    assert len(server.hits) == 2


async def test_concurrent_resolutions_share_one_fetch(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    resolver = make_resolver()
    results = await asyncio.gather(*(resolver.resolve("hs.example.test") for _ in range(10)))
    assert {d.step for d in results} == {"3.2"}
    assert len(server.hits) == 1


def test_cache_period_parsing() -> None:
    assert cache_period({"cache-control": "max-age=60"}) == 60.0
    assert cache_period({"Cache-Control": "no-store, max-age=60"}) == 0.0
    assert cache_period({"Cache-Control": "max-age=abc"}) == 0.0
    assert cache_period({"Expires": "garbage"}) == 0.0
    assert cache_period({}) is None


# -- SRV selection (RFC 2782) --------------------------------------------------------------


class FixedRandom(random.Random):
    def __init__(self, value: int) -> None:
        super().__init__(0)
        self.value = value

    def randint(self, a: int, b: int) -> int:
        return min(max(self.value, a), b)

    def shuffle(self, x: list[object]) -> None:  # type: ignore[override]
        pass


def test_srv_lowest_priority_wins() -> None:
    records = [("c.test", 3, 20, 100), ("a.test", 1, 10, 0), ("b.test", 2, 30, 0)]
    assert pick_srv(records, random.Random(1)) == ("a.test", 1, 10, 0)


def test_srv_weighted_choice_within_priority() -> None:
    records = [("light.test", 2, 5, 10), ("heavy.test", 1, 5, 90), ("zero.test", 3, 5, 0)]
    # (FixedRandom does not shuffle.) Zero weights first, then running sums 0, 10, 100.
    assert pick_srv(records, FixedRandom(0))[0] == "zero.test"  # type: ignore[index]
    assert pick_srv(records, FixedRandom(10))[0] == "light.test"  # type: ignore[index]
    assert pick_srv(records, FixedRandom(11))[0] == "heavy.test"  # type: ignore[index]
    assert pick_srv(records, FixedRandom(100))[0] == "heavy.test"  # type: ignore[index]
    rng = random.Random(42)
    picks = [pick_srv(records[:2], rng)[0] for _ in range(2000)]  # type: ignore[index]
    assert 0.85 < picks.count("heavy.test") / len(picks) < 0.95
    assert pick_srv([], rng) is None


async def test_srv_priority_used_in_resolution(
    server: WellKnownServer, make_resolver: Callable[..., ServerResolver]
) -> None:
    server.status = 404
    srv = FakeSrv(
        {
            "_matrix-fed._tcp.hs.example.test": [
                ("backup.example.test", 2, 20, 100),
                ("main.example.test", 1, 10, 1),
            ]
        }
    )
    dest = await make_resolver(srv_lookup=srv).resolve("hs.example.test")
    assert (dest.host, dest.port) == ("main.example.test", 1)


# -- the default SRV lookup against a real DNS server on loopback --------------------------


class _DnsServer(asyncio.DatagramProtocol):
    """Answers SRV queries from ``zone``; unknown names are NXDOMAIN, "fail." names SERVFAIL."""

    def __init__(self, zone: dict[str, list[str]]) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        name = query.question[0].name.to_text()
        if name.startswith("fail."):
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif self.zone[name]:
            response.answer.append(dns.rrset.from_text(name, 300, "IN", "SRV", *self.zone[name]))
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


async def test_dns_srv_lookup_against_loopback_dns() -> None:
    zone = {
        "_matrix-fed._tcp.hs.example.test.": [
            "10 5 8449 fed1.example.test.",
            "20 0 8450 fed2.example.test.",
        ],
        "_matrix-fed._tcp.empty.example.test.": [],
    }
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _DnsServer(zone), local_addr=("127.0.0.1", 0)
    )
    try:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = transport.get_extra_info("sockname")[1]
        lookup = DnsSrvLookup(resolver)
        assert sorted(await lookup("_matrix-fed._tcp.hs.example.test")) == [
            ("fed1.example.test", 8449, 10, 5),
            ("fed2.example.test", 8450, 20, 0),
        ]
        assert await lookup("_matrix-fed._tcp.empty.example.test") == []  # NoAnswer
        assert await lookup("_matrix-fed._tcp.nothing.example.test") == []  # NXDOMAIN
        with pytest.raises(dns.exception.DNSException):
            await lookup("fail.example.test")

        srv_resolver = ServerResolver(srv_lookup=lookup, well_known_getter=_not_found)
        dest = await srv_resolver.resolve("hs.example.test")
        assert dest == Destination("fed1.example.test", 8449, "hs.example.test", "hs.example.test")
        assert dest.step == "4"
    finally:
        transport.close()


async def _not_found(_hostname: str) -> WellKnownResponse:
    return WellKnownResponse(404, b"")
