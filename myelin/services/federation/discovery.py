"""Turning a server name into somewhere to connect (server-server API, "Resolving server names").

The spec's numbered steps are followed literally; each branch below cites its step. What this
module decides is *where* to connect and *which name* the peer must prove with its certificate
(and send as ``Host``). It does not resolve the final host name to IP addresses: the federation
client's connector does that, through the address guard, so the addresses that are checked are
the addresses that are connected to.

Caching (step 3 leaves the numbers to us; see the ``ServerResolver`` constants):

* a valid ``/.well-known/matrix/server`` answer is kept for its ``Cache-Control: max-age`` (or
  ``Expires``), 24 h without either, never more than 48 h and never less than 5 min, so a peer
  sending ``no-cache`` does not make us refetch on every request;
* a failed or invalid one is kept for 5 min, doubled on each consecutive failure up to 1 h (the
  spec recommends "up to an hour" and exponential back-off);
* SRV answers (found or not) are kept for 5 min; a failed SRV query is not cached and is
  treated as "no record", which only ever falls back to a name the certificate must still match.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict
from yarl import URL

from myelin.ids import is_valid_server_name, split_server_name
from myelin.services.media.safe_fetch import (
    DEFAULT_DENIED_RANGES,
    AddressPolicy,
    GuardedResolver,
    UrlBlocked,
    literal_address,
)

if TYPE_CHECKING:
    import dns.asyncresolver

log = logging.getLogger(__name__)

DEFAULT_PORT = 8448
SrvRecord = tuple[str, int, int, int]  # (target, port, priority, weight)
SrvLookup = Callable[[str], Awaitable[list[SrvRecord]]]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DAY = 24 * 3600.0
T = TypeVar("T")


class InvalidServerName(ValueError):
    """The string is not a server name (appendices, "Server Name" grammar)."""


@dataclass(frozen=True)
class Destination:
    """Where to send requests for ``server_name``, and what to call the peer when we do.

    ``host`` is what the connector resolves and connects to (a host name or an IP literal,
    IPv6 without brackets). ``host_header`` is the ``Host`` header the spec step asks for; its
    host part (``tls_name``) is the name the certificate must be valid for and, unless it is an
    IP address, the SNI sent.
    """

    host: str
    port: int
    host_header: str
    server_name: str
    step: str = field(default="", compare=False)  # which spec step produced it, for logs/tests

    @property
    def tls_name(self) -> str:
        """The certificate name to verify: ``host_header`` without port or brackets."""
        return split_server_name(self.host_header)[0]

    @property
    def sni(self) -> str | None:
        """The SNI to send: none for an IP address (spec, "TLS")."""
        return None if _ip_literal(self.tls_name) else self.tls_name


@dataclass(frozen=True)
class WellKnownResponse:
    """The final (post-redirect) answer to a ``/.well-known/matrix/server`` request."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


WellKnownGetter = Callable[[str], Awaitable[WellKnownResponse]]


def _ip_literal(host: str) -> bool:
    """True for an IPv4 dotted quad or IPv6 address (brackets already removed)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def cache_period(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the response may be cached per ``Cache-Control``/``Expires``; None if unsaid."""
    headers = CIMultiDict(headers)
    cache_control = headers.get("cache-control")
    if cache_control:
        for directive in cache_control.lower().split(","):
            name, _, value = directive.strip().partition("=")
            if name in ("no-store", "no-cache"):
                return 0.0
            if name == "max-age":
                try:
                    return max(0.0, float(int(value.strip().strip('"'))))
                except ValueError:
                    return 0.0
    if expires := headers.get("expires"):
        date = headers.get("date")
        try:
            base = parsedate_to_datetime(date).timestamp() if date else None
            return max(0.0, parsedate_to_datetime(expires).timestamp() - (base or now or 0.0))
        except (TypeError, ValueError, IndexError):
            return 0.0  # an unparsable Expires means "already expired" (RFC 9111, 5.3)
    return None


def pick_srv(records: list[SrvRecord], rng: random.Random) -> SrvRecord | None:
    """RFC 2782 selection: lowest priority wins, then a weighted random pick within it."""
    usable = [r for r in records if r[0].rstrip(".")]  # a lone "." target means "no service"
    if not usable:
        return None
    best = min(r[2] for r in usable)
    group = [r for r in usable if r[2] == best]
    rng.shuffle(group)
    group.sort(key=lambda r: r[3] != 0)  # "all those with weight 0 are placed at the beginning"
    pick = rng.randint(0, sum(r[3] for r in group))
    running = 0
    for record in group:
        running += record[3]
        if running >= pick:
            return record
    return group[-1]


class DnsSrvLookup:
    """The default ``srv_lookup``: dnspython's async resolver (the system's by default).

    dnspython is imported on the first lookup, not with this module: it costs ~3 MiB of
    resident memory, and a server that never federates, or only with IP literals and
    explicit ports, never needs it.
    """

    def __init__(self, resolver: dns.asyncresolver.Resolver | None = None) -> None:
        self._resolver = resolver

    async def __call__(self, name: str) -> list[SrvRecord]:
        """SRV records for ``name``; none, or no such name, gives ``[]``; other errors raise."""
        import dns.asyncresolver
        import dns.resolver

        if self._resolver is None:
            self._resolver = dns.asyncresolver.Resolver()  # reads /etc/resolv.conf
        try:
            answer = await self._resolver.resolve(name, "SRV", lifetime=10.0)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        return [
            (r.target.to_text(omit_final_dot=True), r.port, r.priority, r.weight) for r in answer
        ]


class HttpsWellKnownGetter:
    """GETs ``https://<hostname>/.well-known/matrix/server``, following 30x redirects by hand.

    Only https redirects are followed (the answer delegates trust, so it must come over TLS), a
    target already visited is a loop, and every hop goes through the same address guard as the
    federation client so a server name cannot make us fetch from the internal network.
    """

    TIMEOUT_S = 10.0
    MAX_REDIRECTS = 5
    MAX_BYTES = 50 * 1024  # as Synapse: an m.server answer is tiny

    def __init__(
        self,
        *,
        verify_tls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        allow_private_destinations: bool = False,
        dns_resolver: AbstractResolver | None = None,
        port: int = 443,
    ) -> None:
        self._ssl: ssl.SSLContext | bool = (
            (ssl_context or ssl.create_default_context()) if verify_tls else False
        )
        self._policy = (
            None if allow_private_destinations else AddressPolicy(DEFAULT_DENIED_RANGES, ())
        )
        self._dns_resolver = dns_resolver
        self._port = port
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            resolver: AbstractResolver | None = self._dns_resolver
            if self._policy is not None:
                resolver = GuardedResolver(self._policy, self._dns_resolver)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, limit=20),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"User-Agent": "Myelin"},
            )
        return self._session

    async def __call__(self, hostname: str) -> WellKnownResponse:
        """Fetch; raises on network/TLS/redirect failures (all mean "error response")."""
        url = URL.build(
            scheme="https",
            host=hostname,
            port=None if self._port == 443 else self._port,
            path="/.well-known/matrix/server",
        )
        seen = {url}
        async with asyncio.timeout(self.TIMEOUT_S):
            for _ in range(self.MAX_REDIRECTS + 1):
                address = literal_address(url.raw_host or "")
                if address is not None and self._policy and not self._policy.is_allowed(address):
                    raise UrlBlocked("well-known points at a denied address")
                async with self._get_session().get(
                    url, allow_redirects=False, ssl=self._ssl
                ) as resp:
                    location = resp.headers.get("Location")
                    if resp.status not in _REDIRECT_STATUSES or not location:
                        body = bytearray()
                        async for chunk in resp.content.iter_chunked(16 * 1024):
                            body += chunk
                            if len(body) > self.MAX_BYTES:
                                raise ValueError("well-known response too large")
                        return WellKnownResponse(resp.status, bytes(body), dict(resp.headers))
                url = url.join(URL(location)).with_fragment(None)
                if url.scheme != "https":
                    raise ValueError("well-known redirect to a non-https URL")
                if url in seen:
                    raise ValueError("well-known redirect loop")
                seen.add(url)
        raise ValueError("too many well-known redirects")

    async def close(self) -> None:
        """Close the session; a later fetch opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass
class _Cached(Generic[T]):
    value: T
    expires_at: float
    failures: int = 0  # consecutive well-known failures, for the back-off


class ServerResolver:
    """Resolves server names per the spec, caching well-known and SRV answers (see module doc).

    ``srv_lookup`` and ``well_known_getter`` are injectable so tests need no real DNS or port
    443; ``well_known_port`` (tests only) changes the port of the default getter.
    """

    DEFAULT_CACHE_S = _DAY  # the spec's recommended default
    MAX_CACHE_S = 2 * _DAY  # the spec's recommended maximum
    MIN_CACHE_S = 300.0  # so "no-cache" does not mean a fetch per request
    ERROR_CACHE_INITIAL_S = 300.0  # doubled per consecutive failure...
    ERROR_CACHE_MAX_S = 3600.0  # ...up to the spec's "up to an hour"
    SRV_CACHE_S = 300.0
    MAX_ENTRIES = 10_000

    def __init__(
        self,
        *,
        srv_lookup: SrvLookup | None = None,
        well_known_getter: WellKnownGetter | None = None,
        verify_tls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        allow_private_destinations: bool = False,
        dns_resolver: AbstractResolver | None = None,
        well_known_port: int = 443,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._srv_lookup = srv_lookup or DnsSrvLookup()
        self._owned_getter: HttpsWellKnownGetter | None = None
        if well_known_getter is None:
            self._owned_getter = HttpsWellKnownGetter(
                verify_tls=verify_tls,
                ssl_context=ssl_context,
                allow_private_destinations=allow_private_destinations,
                dns_resolver=dns_resolver,
                port=well_known_port,
            )
            well_known_getter = self._owned_getter
        self._get_well_known = well_known_getter
        self._clock = clock
        self._rng = rng or random.Random()
        self._well_known: dict[str, _Cached[str | None]] = {}  # None: error response
        self._srv: dict[str, _Cached[list[SrvRecord]]] = {}
        self._inflight: dict[str, asyncio.Future[str | None]] = {}

    async def resolve(self, server_name: str) -> Destination:
        """Where to connect for ``server_name``; raises ``InvalidServerName`` on bad input."""
        if not isinstance(server_name, str) or not is_valid_server_name(server_name):
            raise InvalidServerName(f"not a valid server name: {server_name!r}")
        hostname, port = split_server_name(server_name)
        if _ip_literal(hostname):
            # Step 1: IP literal; the given port or 8448; Host is the server name as given.
            return Destination(hostname, port or DEFAULT_PORT, server_name, server_name, "1")
        if port is not None:
            # Step 2: host name with explicit port; Host is the server name (with port).
            return Destination(hostname, port, server_name, server_name, "2")
        # Step 3: /.well-known/matrix/server on the host name.
        delegated = await self._well_known_for(hostname)
        if delegated is not None:
            return await self._delegated(server_name, delegated)
        # Steps 4 and 5: SRV _matrix-fed._tcp, then the deprecated _matrix._tcp.
        found = await self._srv_destination(hostname, server_name, ("4", "5"))
        if found is not None:
            return found
        # Step 6: the host name itself on 8448.
        return Destination(hostname, DEFAULT_PORT, hostname, server_name, "6")

    async def _delegated(self, server_name: str, delegated: str) -> Destination:
        """Step 3's sub-steps for a valid ``m.server`` value."""
        d_host, d_port = split_server_name(delegated)
        if _ip_literal(d_host):
            # 3.1: IP literal; Host is the IP address, with the port if one was given.
            return Destination(d_host, d_port or DEFAULT_PORT, delegated, server_name, "3.1")
        if d_port is not None:
            # 3.2: delegated host name with port; Host is "<delegated_hostname>:<port>".
            return Destination(d_host, d_port, delegated, server_name, "3.2")
        # 3.3 and 3.4: SRV _matrix-fed._tcp, then the deprecated _matrix._tcp.
        found = await self._srv_destination(d_host, server_name, ("3.3", "3.4"))
        if found is not None:
            return found
        # 3.5: the delegated host name on 8448.
        return Destination(d_host, DEFAULT_PORT, d_host, server_name, "3.5")

    async def _srv_destination(
        self, hostname: str, server_name: str, steps: tuple[str, str]
    ) -> Destination | None:
        """The SRV steps: the record's target and port, ``Host`` stays ``hostname``."""
        for prefix, step in zip(("_matrix-fed._tcp.", "_matrix._tcp."), steps, strict=True):
            record = pick_srv(await self._srv_records(prefix + hostname), self._rng)
            if record is not None:
                return Destination(record[0].rstrip("."), record[1], hostname, server_name, step)
        return None

    async def _srv_records(self, name: str) -> list[SrvRecord]:
        key = name.lower()
        now = self._clock()
        cached = self._srv.get(key)
        if cached is not None and cached.expires_at > now:
            return cached.value
        try:
            records = list(await self._srv_lookup(name))
        except Exception as exc:  # DNS failure: fall through to the next step, uncached
            log.warning("SRV lookup for %s failed: %s", name, type(exc).__name__)
            return []
        self._evict(self._srv, now)
        self._srv[key] = _Cached(records, now + self.SRV_CACHE_S)
        return records

    async def _well_known_for(self, hostname: str) -> str | None:
        """The cached or freshly fetched ``m.server``; concurrent callers share one fetch."""
        key = hostname.lower()
        cached = self._well_known.get(key)
        if cached is not None and cached.expires_at > self._clock():
            return cached.value
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._refresh(key, hostname, cached))
            self._inflight[key] = future
            future.add_done_callback(lambda _f: self._inflight.pop(key, None))
        return await asyncio.shield(future)

    async def _refresh(
        self, key: str, hostname: str, previous: _Cached[str | None] | None
    ) -> str | None:
        value, ttl = await self._fetch(hostname)
        failures = 0
        if value is None:
            failures = (previous.failures if previous else 0) + 1
            ttl = min(self.ERROR_CACHE_INITIAL_S * 2 ** (failures - 1), self.ERROR_CACHE_MAX_S)
        else:
            ttl = min(
                max(ttl if ttl is not None else self.DEFAULT_CACHE_S, self.MIN_CACHE_S),
                self.MAX_CACHE_S,
            )
        now = self._clock()
        self._evict(self._well_known, now)
        self._well_known[key] = _Cached(value, now + ttl, failures)
        return value

    async def _fetch(self, hostname: str) -> tuple[str | None, float | None]:
        """Step 3's request: (m.server, cache period) or (None, None) for any error response."""
        try:
            resp = await self._get_well_known(hostname)
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            content = orjson.loads(resp.body)  # JSON "regardless of type" (wellknown.yaml)
            m_server = content.get("m.server") if isinstance(content, dict) else None
            if not isinstance(m_server, str) or not is_valid_server_name(m_server):
                raise ValueError("no valid m.server")
        except Exception as exc:  # network, TLS, timeout, redirects, size, bad content
            reason = str(exc) if type(exc) is ValueError else type(exc).__name__
            log.info("well-known for %s is an error response: %s", hostname, reason)
            return None, None
        return m_server, cache_period(resp.headers, now=time.time())

    def _evict(self, table: dict[str, _Cached[Any]], now: float) -> None:
        """Keep the caches bounded: drop expired entries, then the oldest, when full."""
        if len(table) < self.MAX_ENTRIES:
            return
        for key in [k for k, v in table.items() if v.expires_at <= now]:
            del table[key]
        while len(table) >= self.MAX_ENTRIES:
            del table[next(iter(table))]

    async def close(self) -> None:
        """Cancel in-flight fetches and close the default getter's session."""
        for future in list(self._inflight.values()):
            future.cancel()
        if self._owned_getter is not None:
            await self._owned_getter.close()
