"""SafeFetcher against real aiohttp servers on loopback.

Loopback is denied by default, which is exactly what lets these tests show both sides: the
default ranges must block the local server, and ``allowed_ranges`` must let it through.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from myelin.services.media.safe_fetch import (
    DEFAULT_DENIED_RANGES,
    AddressPolicy,
    FetchError,
    GuardedResolver,
    SafeFetcher,
    UrlBlocked,
    _find_blocked,
    host_matches,
    literal_address,
)

LOOPBACK_ONLY = ["127.0.0.1/32"]
HTML = "<html><head><title>Caf\u00e9</title></head></html>".encode("latin-1")


@dataclass
class LocalServer:
    port: int
    hits: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _app(server: LocalServer) -> web.Application:
    async def html(request: web.Request) -> web.StreamResponse:
        server.hits.append(request.path)
        return web.Response(
            body=HTML, headers={"Content-Type": 'text/html; Charset="ISO-8859-1"'}
        )

    async def cookie(request: web.Request) -> web.StreamResponse:
        server.headers.append(dict(request.headers))
        resp = web.Response(text="ok")
        resp.set_cookie("session", "secret")
        return resp

    async def redirect(request: web.Request) -> web.StreamResponse:
        server.hits.append(request.path)
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.StreamResponse:
        server.hits.append(request.path)
        raise web.HTTPFound("/loop")

    async def chain(request: web.Request) -> web.StreamResponse:
        server.hits.append(request.path)
        n = int(request.match_info["n"])
        if n == 0:
            return web.Response(text="end")
        raise web.HTTPMovedPermanently(f"/chain/{n - 1}")

    async def big(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 5000, content_type="text/plain")

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"y" * 1000)
        await resp.write_eof()
        return resp

    async def slow(request: web.Request) -> web.StreamResponse:
        server.hits.append(request.path)
        await server.release.wait()
        return web.Response(text="late")

    async def missing(request: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/html", html)
    app.router.add_get("/cookie", cookie)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/chain/{n}", chain)
    app.router.add_get("/big", big)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/slow", slow)
    app.router.add_get("/missing", missing)
    return app


class FakeResolver(AbstractResolver):
    """Answers every name with the next list of addresses (a rebinding DNS server)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    """Serves on 127.0.0.1 and, on the same port, 127.0.0.2 (Linux answers all of 127/8)."""
    state = LocalServer(port=0)
    runner = web.AppRunner(_app(state), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    with contextlib.suppress(OSError):  # only where 127.0.0.2 is not routable
        await web.TCPSite(runner, "127.0.0.2", state.port).start()
    yield state
    state.release.set()
    await runner.cleanup()


@pytest.fixture
async def fetcher_factory() -> AsyncIterator[type[SafeFetcher]]:
    made: list[SafeFetcher] = []

    class Tracked(SafeFetcher):
        def __init__(self, **kwargs: object) -> None:
            kwargs.setdefault("max_bytes", 4096)
            kwargs.setdefault("timeout_s", 5.0)
            super().__init__(**kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for fetcher in made:
        await fetcher.close()


# --- blocking ------------------------------------------------------------------------------


async def test_default_ranges_block_loopback_literal(server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory()
    with pytest.raises(UrlBlocked, match="denied IP address"):
        await fetcher.fetch(server.url("/html"))
    assert server.hits == []


async def test_localhost_blocked_after_resolution(server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory()
    with pytest.raises(UrlBlocked, match="'localhost' resolves to a denied address"):
        await fetcher.fetch(server.url("/html", host="localhost"))
    assert server.hits == []


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]:1/",
        "http://[::ffff:127.0.0.1]:1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1%25eth0]/",
        "http://0.0.0.0:1/",
        "http://127.1:1/",
        "http://2130706433:1/",
        "http://0x7f000001:1/",
        "http://10.1.2.3/",
        "http://[fd00::1]/",
        "http://[2002:7f00:1::1]/",
    ],
)
async def test_denied_literals_fail_fast_without_connecting(url: str, fetcher_factory):
    fetcher = fetcher_factory()
    start = time.monotonic()
    with pytest.raises(UrlBlocked):
        await fetcher.fetch(url)
    assert time.monotonic() - start < 0.5
    assert fetcher._session is None  # rejected before any session or connection existed


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://a.b/"])
async def test_unsupported_schemes_are_fetch_errors(url: str, fetcher_factory):
    # A scheme is "not supported", not "blocked": FetchError, as for a redirect to one.
    with pytest.raises(FetchError, match="unsupported scheme"):
        await fetcher_factory().fetch(url)


async def test_redirect_to_unsupported_scheme(server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory(allowed_ranges=LOOPBACK_ONLY)
    with pytest.raises(FetchError, match="redirect target uses an unsupported scheme"):
        await fetcher.fetch(server.url("/redirect?to=file:///etc/passwd"))


# --- allowed fetches and redirects ----------------------------------------------------------


async def test_allowed_range_fetches_body_and_type(server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory(allowed_ranges=LOOPBACK_ONLY)
    result = await fetcher.fetch(server.url("/html"))
    assert result.status == 200
    assert result.url == server.url("/html")
    assert result.content_type == "text/html"
    assert result.charset == "iso-8859-1"
    assert result.body == HTML
    # The session is reused for a second fetch.
    assert (await fetcher.fetch(server.url("/html"))).body == HTML


async def test_no_cookies_no_proxy_and_headers(server, fetcher_factory, monkeypatch):
    # A proxy from the environment would both leak the request and bypass the address checks.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    fetcher = fetcher_factory(
        allowed_ranges=LOOPBACK_ONLY, user_agent="Test UA", dns_resolver=FakeResolver(["127.0.0.1"])
    )
    # A host name, since aiohttp's default jar would not keep cookies for an IP address anyway.
    url = server.url("/cookie", host="cookies.test")
    await fetcher.fetch(url, accept="image/*")
    await fetcher.fetch(url)
    first, second = server.headers
    assert "Cookie" not in second
    assert first["User-Agent"] == "Test UA"
    assert first["Accept"] == "image/*"
    assert second["Accept"].startswith("text/html")


async def test_absent_content_type(fetcher_factory):
    # aiohttp.web always adds a Content-Type, so this answer comes from a bare socket server.
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw")
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    try:
        fetcher = fetcher_factory(allowed_ranges=LOOPBACK_ONLY)
        result = await fetcher.fetch(f"http://127.0.0.1:{port}/")
    finally:
        raw.close()
        await raw.wait_closed()
    assert (result.content_type, result.charset, result.body) == ("", None, b"raw")


async def test_redirect_to_other_loopback_blocked(server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory(allowed_ranges=LOOPBACK_ONLY)
    target = server.url("/html", host="127.0.0.2")
    with pytest.raises(UrlBlocked, match="redirect target"):
        await fetcher.fetch(server.url(f"/redirect?to={target}"))
    assert server.hits == ["/redirect"]


async def test_redirect_to_hostname_checked_after_resolution(server, fetcher_factory):
    fetcher = fetcher_factory(
        allowed_ranges=LOOPBACK_ONLY, dns_resolver=FakeResolver(["127.0.0.2"])
    )
    target = server.url("/html", host="elsewhere.test")
    with pytest.raises(UrlBlocked, match=r"redirect target.*resolves to a denied address"):
        await fetcher.fetch(server.url(f"/redirect?to={target}"))
    assert server.hits == ["/redirect"]


async def test_denied_host_patterns_checked_on_every_hop(server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory(allowed_ranges=LOOPBACK_ONLY, denied_hosts=["*.internal"],
                              dns_resolver=FakeResolver(["127.0.0.1"]))
    with pytest.raises(UrlBlocked, match=r"^URL names a host"):
        await fetcher.fetch(server.url("/html", host="wiki.internal"))
    for host in ("wiki.internal", "Wiki.INTERNAL."):
        target = server.url("/html", host=host)
        with pytest.raises(UrlBlocked, match="redirect target names a host"):
            await fetcher.fetch(server.url(f"/redirect?to={target}", host="ok.test"))
    assert server.hits == ["/redirect", "/redirect"]
    result = await fetcher.fetch(server.url("/redirect?to=" + server.url("/html", "ok.test")))
    assert result.body == HTML


@pytest.mark.parametrize(("host", "patterns", "expected"), [
    ("localhost", ["localhost"], True),
    ("LOCALHOST.", ["localhost"], True),
    ("localhost", ["localhost."], True),
    ("a.b.internal", ["*.internal"], True),
    ("internal", ["*.internal"], False),
    ("[::1]", ["::1"], True),
    ("example.org", ["*.internal", "localhost"], False),
    ("example.org", [], False),
])
def test_host_matches(host: str, patterns: list[str], expected: bool):
    assert host_matches(host, patterns) is expected


async def test_redirect_followed_when_range_allowed(server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory(allowed_ranges=["127.0.0.0/8"])
    target = server.url("/html", host="127.0.0.2")
    result = await fetcher.fetch(server.url(f"/redirect?to={target}"))
    assert result.url == target
    assert result.body == HTML
    assert server.hits == ["/redirect", "/html"]


async def test_redirect_loop(server: LocalServer, fetcher_factory):
    with pytest.raises(FetchError, match="redirect loop"):
        await fetcher_factory(allowed_ranges=LOOPBACK_ONLY).fetch(server.url("/loop"))


async def test_redirect_limit(server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory(allowed_ranges=LOOPBACK_ONLY, max_redirects=3)
    assert (await fetcher.fetch(server.url("/chain/3"))).body == b"end"
    with pytest.raises(FetchError, match="too many redirects"):
        await fetcher.fetch(server.url("/chain/4"))


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/big", "/chunked"])
async def test_oversized_body(path: str, server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory(allowed_ranges=LOOPBACK_ONLY, max_bytes=4096)
    with pytest.raises(FetchError, match="too large"):
        await fetcher.fetch(server.url(path))
    roomy = fetcher_factory(allowed_ranges=LOOPBACK_ONLY, max_bytes=10_000)
    assert len((await roomy.fetch(server.url(path))).body) in (5000, 10_000)


async def test_not_found(server: LocalServer, fetcher_factory):
    with pytest.raises(FetchError, match="404"):
        await fetcher_factory(allowed_ranges=LOOPBACK_ONLY).fetch(server.url("/missing"))


async def test_timeout(server: LocalServer, fetcher_factory):
    fetcher = fetcher_factory(allowed_ranges=LOOPBACK_ONLY, timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        await fetcher.fetch(server.url("/slow"))
    assert time.monotonic() - start < 2


async def test_connection_refused(fetcher_factory):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match="could not connect"):
        await fetcher_factory(allowed_ranges=LOOPBACK_ONLY).fetch(f"http://127.0.0.1:{port}/")


# --- the resolver and the policy ------------------------------------------------------------


async def test_resolver_rejects_any_denied_address():
    policy = AddressPolicy(DEFAULT_DENIED_RANGES, ())
    resolver = GuardedResolver(policy, FakeResolver(["93.184.215.14", "10.0.0.1"]))
    with pytest.raises(UrlBlocked):
        await resolver.resolve("example.org", 80)
    ok = GuardedResolver(policy, FakeResolver(["93.184.215.14", "2606:2800:21f::1"]))
    assert [r["host"] for r in await ok.resolve("example.org", 80)] == [
        "93.184.215.14",
        "2606:2800:21f::1",
    ]


async def test_rebinding_name_connects_only_to_checked_address(server, fetcher_factory):
    # First answer is allowed (the local server), the second is "rebound" to a denied address:
    # the first fetch connects to what was checked, the second is refused at connect time.
    fetcher = fetcher_factory(
        allowed_ranges=LOOPBACK_ONLY, dns_resolver=FakeResolver(["127.0.0.1"], ["127.0.0.2"])
    )
    url = server.url("/html", host="rebind.test")
    assert (await fetcher.fetch(url)).body == HTML
    await fetcher.close()  # drop pooled connections so the second fetch must connect again
    with pytest.raises(UrlBlocked, match=r"'rebind\.test' resolves to a denied address"):
        await fetcher.fetch(url)
    assert server.hits == ["/html"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("[::1]", "::1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("example.org", None),
        ("cafe.be", None),
        ("deadbeef", None),
    ],
)
def test_literal_address(host: str, expected: str | None):
    address = literal_address(host)
    assert (str(address) if address else None) == expected


def test_blocked_found_inside_wrapping_client_error():
    # aiohttp 3.14 lets the resolver's exception through as is; if a version wraps it in a
    # ClientConnectorError, the chain is searched so callers still get UrlBlocked.
    try:
        try:
            raise UrlBlocked("host 'x' resolves to a denied address")
        except UrlBlocked as inner:
            raise aiohttp.ClientConnectionError("wrapped") from inner
    except aiohttp.ClientError as outer:
        found = _find_blocked(outer)
    assert isinstance(found, UrlBlocked)
    assert _find_blocked(aiohttp.ClientConnectionError("plain")) is None


def test_policy_allow_wins_and_mapped_addresses():
    policy = AddressPolicy(DEFAULT_DENIED_RANGES, ["10.1.0.0/16"])
    ip = ipaddress.ip_address
    assert policy.is_allowed(ip("10.1.2.3"))
    assert policy.is_allowed(ip("::ffff:10.1.2.3"))
    assert not policy.is_allowed(ip("10.2.0.1"))
    assert not policy.is_allowed(ip("::ffff:169.254.169.254"))
    assert not policy.is_allowed(ip("fe80::1%eth0"))
    assert policy.is_allowed(ip("93.184.215.14"))
    assert policy.is_allowed(ip("2606:2800:21f::1"))
