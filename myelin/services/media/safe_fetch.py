"""An HTTP fetcher for URL previews that cannot be pointed at the homeserver's own network.

``preview_url`` makes the server fetch any URL a user names, which is a textbook server-side
request forgery vector: without a guard, ``http://169.254.169.254/`` (cloud metadata),
``http://localhost:5432/`` or an intranet host would be fetched and summarised for the attacker.

The guard works at two levels:

* URLs whose host is an IP literal (including IPv6 literals, IPv4-mapped IPv6 and the legacy
  numeric IPv4 spellings ``socket`` still accepts) are checked before any request is made.
  aiohttp connects to literals without consulting the resolver, so this check is the one that
  counts for them.
* Host names go through :class:`GuardedResolver`, the ``AbstractResolver`` given to the
  ``TCPConnector``. It resolves the name, rejects the lot if ANY address is denied, and hands the
  checked addresses straight back to aiohttp, which connects to exactly those. Checking and
  connecting therefore use the same answer, so a DNS-rebinding server cannot pass the check with
  a public address and then have the connection go to a private one.

Redirects are followed by hand so every hop goes through both checks again, and through the
configured host-name patterns (``url_preview.denied_hosts``): a redirect must not reach a host
the first URL could not have named.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Everything that is not ordinary globally routed unicast. In the spirit of Synapse's
# url_preview_ip_range_blacklist, a little stricter on the IPv6 transition ranges, which embed
# IPv4 addresses (a 6to4 / NAT64 address can lead straight back into a private IPv4 network).
DEFAULT_DENIED_RANGES: tuple[str, ...] = (
    # IPv4
    "0.0.0.0/8",  # "this network", includes the unspecified address
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (cloud metadata services live here)
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, includes 255.255.255.255 broadcast
    # IPv6
    "::/128",  # unspecified
    "::1/128",  # loopback
    "::/96",  # deprecated IPv4-compatible addresses
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b::/96",  # NAT64 well-known prefix
    "64:ff9b:1::/48",  # NAT64 local-use
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments, includes Teredo 2001::/32
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "3fff::/20",  # documentation
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated)
    "ff00::/8",  # multicast
)

_SCHEMES = frozenset({"http", "https"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE = 64 * 1024
_LEGACY_IPV4_CHARS = frozenset("0123456789abcdefx.")


class UrlBlocked(Exception):
    """The URL, a redirect target or an address its host resolves to is not allowed."""


class FetchError(Exception):
    """The fetch failed: network error, timeout, bad status, too many redirects, too large,
    or a scheme other than http/https."""


class BodyTooLarge(FetchError):
    """The body is larger than ``max_bytes``: a type of its own so callers that must answer
    "too large" (remote media: 502 M_TOO_LARGE) need not match a message."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str  # final URL after redirects
    status: int
    content_type: str  # media type, lower-cased, without parameters; "" if absent
    charset: str | None  # from the Content-Type parameters, lower-cased
    body: bytes
    content_disposition: str | None = None  # as sent, for callers that keep a file name


def _networks(ranges: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(r, strict=False) for r in ranges)


class AddressPolicy:
    """Which IP addresses may be connected to: allowed ranges win over denied ones."""

    def __init__(self, denied_ranges: Sequence[str], allowed_ranges: Sequence[str]) -> None:
        self._denied = _networks(denied_ranges)
        self._allowed = _networks(allowed_ranges)

    def is_allowed(self, address: IPAddress) -> bool:
        # An IPv4-mapped address (::ffff:a.b.c.d) reaches the IPv4 host on dual-stack sockets,
        # so it is judged as that IPv4 address too; a scope id (fe80::1%eth0) is irrelevant.
        forms: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            if address.scope_id is not None:
                forms = [ipaddress.IPv6Address(address.packed)]
            if address.ipv4_mapped is not None:
                forms.append(address.ipv4_mapped)
        if any(a in net for a in forms for net in self._allowed):
            return True
        return not any(a in net for a in forms for net in self._denied)


def host_matches(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` matches one of the ``*``/``?`` patterns, case-insensitively.

    A trailing dot (``localhost.``, the same name in absolute form) and IPv6 brackets are
    dropped first, so spelling a denied host differently does not get it past the check.
    """
    name = host.strip("[]").rstrip(".").lower()
    return any(fnmatch.fnmatchcase(name, pattern.rstrip(".").lower()) for pattern in patterns)


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells, or ``None`` if it is a name.

    Besides the standard forms this recognises what ``inet_aton`` would accept (``127.1``,
    ``0x7f000001``, ``017700000001``): aiohttp currently refuses to connect to those, but a
    check must not depend on that staying true.
    """
    host = host.strip("[]")
    # An IPv6 zone id (raw form "%25eth0") does not change the address; a trailing dot on an
    # IPv4 address is the root of the DNS tree and does not either.
    host = host.split("%", 1)[0] if ":" in host else host.rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and ":" not in host and set(host.lower()) <= _LEGACY_IPV4_CHARS:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and refuses any answer containing a denied address.

    Used as the ``TCPConnector`` resolver, so the addresses checked are the very ones aiohttp
    then connects to (on every request, including each redirect hop).
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner
        self._owns_inner = inner is None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = literal_address(result["host"])
            if address is None or not self._policy.is_allowed(address):
                raise UrlBlocked(f"host {host!r} resolves to a denied address")
        return results

    async def close(self) -> None:
        if self._inner is not None and self._owns_inner:
            await self._inner.close()


def _find_blocked(exc: BaseException) -> UrlBlocked | None:
    """The ``UrlBlocked`` from the resolver, if aiohttp wrapped one in a connector error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UrlBlocked):
            return current
        seen.add(id(current))
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, UrlBlocked):
            return os_error
        current = current.__cause__ or current.__context__
    return None


def _describe(exc: BaseException) -> str:
    """A message for a client-side failure that names the kind, not the internals."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "could not resolve host"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "could not connect"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.InvalidURL):
        return "URL is not valid"
    return f"request failed ({type(exc).__name__})"


def _parse_content_type(value: str | None) -> tuple[str, str | None]:
    if not value:
        return "", None
    media_type, *params = value.split(";")
    charset = None
    for param in params:
        key, sep, val = param.partition("=")
        if sep and key.strip().lower() == "charset":
            charset = val.strip().strip("\"'").strip().lower() or None
            break
    return media_type.strip().lower(), charset


class SafeFetcher:
    """Fetches one URL at a time for previews; see the module docstring for the guarantees.

    The aiohttp session is created on the first fetch so it binds to the loop that runs it.
    """

    def __init__(
        self,
        *,
        denied_ranges: Sequence[str] = DEFAULT_DENIED_RANGES,
        allowed_ranges: Sequence[str] = (),
        denied_hosts: Sequence[str] = (),
        max_bytes: int,
        timeout_s: float,
        max_redirects: int = 5,
        user_agent: str = "Myelin URL preview",
        dns_resolver: AbstractResolver | None = None,
    ) -> None:
        self._policy = AddressPolicy(denied_ranges, allowed_ranges)
        self._denied_hosts = tuple(denied_hosts)
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        self._user_agent = user_agent
        self._dns_resolver = dns_resolver
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._resolver = GuardedResolver(self._policy, self._dns_resolver)
            connector = aiohttp.TCPConnector(
                resolver=self._resolver, use_dns_cache=False, limit=50
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                headers={"User-Agent": self._user_agent},
            )
        return self._session

    def _check_url(self, url: URL, what: str) -> None:
        """Scheme, host-pattern and IP-literal checks, before any connection is attempted;
        run for the first URL and again for every redirect target."""
        if url.scheme not in _SCHEMES:
            raise FetchError(f"{what} uses an unsupported scheme (only http and https)")
        host = url.raw_host
        if not host:
            raise FetchError(f"{what} has no host")
        # Both spellings of an internationalised name: the pattern may be written either way.
        if host_matches(host, self._denied_hosts) or host_matches(url.host or "",
                                                                  self._denied_hosts):
            raise UrlBlocked(f"{what} names a host this server does not fetch from")
        address = literal_address(host)
        if address is not None and not self._policy.is_allowed(address):
            raise UrlBlocked(f"{what} points at a denied IP address")

    async def fetch(self, url: str, *, accept: str = "text/html,*/*;q=0.8") -> FetchResult:
        """GET ``url``, following redirects; raise ``UrlBlocked`` or ``FetchError`` on failure."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise FetchError("URL is not valid") from None
        self._check_url(parsed, "URL")
        session = self._get_session()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._follow(session, parsed, accept)
        except TimeoutError:
            raise FetchError("timed out") from None

    async def _follow(self, session: aiohttp.ClientSession, url: URL, accept: str) -> FetchResult:
        seen = {url}
        for hop in range(self._max_redirects + 1):
            what = "URL" if hop == 0 else "redirect target"
            self._check_url(url, what)
            try:
                async with session.get(
                    url, allow_redirects=False, headers={"Accept": accept}
                ) as resp:
                    location = resp.headers.get("Location")
                    if resp.status not in _REDIRECT_STATUSES or not location:
                        return await self._result(url, resp)
                try:
                    target = url.join(URL(location)).with_fragment(None)
                except (ValueError, TypeError):
                    raise FetchError("redirect Location is not a valid URL") from None
            except (aiohttp.ClientError, UrlBlocked) as exc:
                blocked = _find_blocked(exc)
                if blocked is not None:
                    raise UrlBlocked(f"{what}: {blocked}") from None
                raise FetchError(_describe(exc)) from None
            if target in seen:
                raise FetchError("redirect loop")
            seen.add(target)
            url = target
        raise FetchError(f"too many redirects (more than {self._max_redirects})")

    async def _result(self, url: URL, resp: aiohttp.ClientResponse) -> FetchResult:
        if not 200 <= resp.status < 300:
            raise FetchError(f"remote server answered HTTP {resp.status}")
        declared = resp.content_length
        if declared is not None and declared > self._max_bytes:
            raise BodyTooLarge("response body too large")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK_SIZE):
            body += chunk
            if len(body) > self._max_bytes:
                raise BodyTooLarge("response body too large")
        content_type, charset = _parse_content_type(resp.headers.get("Content-Type"))
        return FetchResult(
            url=str(url),
            status=resp.status,
            content_type=content_type,
            charset=charset,
            body=bytes(body),
            content_disposition=resp.headers.get("Content-Disposition"),
        )

    async def close(self) -> None:
        """Close the session and resolver; a later fetch starts a fresh session."""
        session, resolver = self._session, self._resolver
        self._session = self._resolver = None
        if session is not None:
            await session.close()
        if resolver is not None:
            await resolver.close()
