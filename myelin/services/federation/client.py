"""Outgoing server-server requests: resolve, sign, connect with the right TLS name, bound the reply.

How each request reaches its peer (server-server API, "TLS" and "Resolving server names"):

* :class:`ServerResolver` says where to connect (``Destination.host``/``port``) and what the peer
  must prove (``Destination.host_header``). The URL names the connect target; the ``Host``
  header is overridden with ``host_header``; aiohttp's ``server_hostname=`` is set to the
  certificate name, so OpenSSL both sends it as SNI and checks the certificate against it.
  CPython sends no SNI for an IP address and checks the certificate's IP SANs instead, which is
  exactly the spec's rule for IP literals. ``server_hostname`` is part of aiohttp's
  connection-pool key, so a pooled connection is never reused under another certificate name.
* Unless ``allow_private_destinations`` is set, IP literals are checked before connecting (aiohttp
  does not resolve them) and host names go through the media fetcher's ``GuardedResolver``, which
  checks the very addresses aiohttp then connects to.
* The URI is built once, as it will be sent, and that same string is what ``sign`` signs.
* Bodies are read incrementally and refused past a size cap; the whole request (resolution
  included) runs under one deadline.

Failures surface as :class:`FederationError` (the peer answered with an error) or
:class:`DestinationUnreachable` (we never got an HTTP answer); messages name the kind of failure,
never internals.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDictProxy
from yarl import URL

from myelin.ids import is_valid_server_name
from myelin.services.federation.discovery import Destination, ServerResolver
from myelin.services.media.safe_fetch import (
    DEFAULT_DENIED_RANGES,
    AddressPolicy,
    GuardedResolver,
    UrlBlocked,
    literal_address,
)

Signer = Callable[[str, str, str, Any | None], str]

MiB = 1024 * 1024
_CHUNK = 64 * 1024
_BODY_METHODS = frozenset({"POST", "PUT"})
_PATH_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"?", "#"}


class FederationError(Exception):
    """A federation request failed; ``status`` is the HTTP status (0: no HTTP answer)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        errcode: str | None = None,
        body: Any | None = None,
        destination: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.body = body  # the parsed JSON error body, or None
        self.destination = destination


class DestinationUnreachable(FederationError):
    """DNS, connection, TLS or timeout failure: the peer never answered (status 0)."""

    def __init__(self, message: str, *, destination: str | None = None) -> None:
        super().__init__(message, status=0, destination=destination)


class DestinationDenied(DestinationUnreachable):
    """The destination resolves to an address we may not connect to (private, loopback...)."""


class ResponseTooLarge(FederationError):
    """The peer's answer exceeded the size cap; nothing of it is returned."""


class RawResponse(NamedTuple):
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


def build_uri(path: str, query: Mapping[str, str | Sequence[str]] | None = None) -> str:
    """The request target exactly as sent and signed: ``path`` (already percent-encoded by the
    caller) plus the query, each value percent-encoded (``%20`` for space, not ``+``)."""
    if not path.startswith("/") or not set(path) <= _PATH_CHARS:
        raise ValueError("path must start with '/' and be percent-encoded, without '?' or '#'")
    if not query:
        return path
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        if isinstance(value, str):
            pairs.append((key, value))
        else:
            pairs.extend((key, item) for item in value)
    return f"{path}?{urlencode(pairs, quote_via=quote)}" if pairs else path


def _describe(exc: BaseException) -> str:
    """A short message naming the kind of failure (no internals, no stack traces)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "could not resolve host"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "could not connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timed out"
    return f"request failed ({type(exc).__name__})"


def _blocked_in(exc: BaseException) -> bool:
    """Whether the address guard's ``UrlBlocked`` is (wrapped) inside ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UrlBlocked) or isinstance(
            getattr(current, "os_error", None), UrlBlocked
        ):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class FederationClient:
    """Sends requests to other homeservers; one pooled aiohttp session, created lazily."""

    def __init__(
        self,
        server_name: str,
        sign: Signer,
        resolver: ServerResolver,
        *,
        verify_tls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        allow_private_destinations: bool = False,
        timeout_s: float = 60.0,
        max_json_bytes: int = 20 * MiB,
        max_media_bytes: int = 100 * MiB,
        dns_resolver: AbstractResolver | None = None,
        connections_per_host: int = 8,
        user_agent: str = "Myelin",
    ) -> None:
        self.server_name = server_name
        self._sign = sign
        self._resolver = resolver
        # ssl=False still sends SNI but skips verification (spec: allowed for testing).
        self._ssl: ssl.SSLContext | bool = (
            (ssl_context or ssl.create_default_context()) if verify_tls else False
        )
        self._policy = (
            None if allow_private_destinations else AddressPolicy(DEFAULT_DENIED_RANGES, ())
        )
        self._timeout_s = timeout_s
        self._max_json_bytes = max_json_bytes
        self._max_media_bytes = max_media_bytes
        self._dns_resolver = dns_resolver
        self._connections_per_host = connections_per_host
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            resolver = self._dns_resolver
            if self._policy is not None:
                resolver = GuardedResolver(self._policy, self._dns_resolver)
            connector = aiohttp.TCPConnector(
                resolver=resolver, limit=0, limit_per_host=self._connections_per_host
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"User-Agent": self._user_agent},
            )
        return self._session

    async def request(
        self,
        destination: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        json: Any | None = None,
        signed: bool = True,
        timeout_s: float | None = None,
    ) -> Any:
        """Send a JSON request and return the parsed JSON answer.

        POST and PUT always carry a JSON body (``{}`` when ``json`` is None): the spec requires
        one. Non-2xx answers raise :class:`FederationError` with the peer's ``errcode``.
        """
        status, _headers, body = await self._send(
            destination, method, path, query, json, signed, timeout_s, self._max_json_bytes
        )
        parsed: Any = None
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            if 200 <= status < 300:
                raise FederationError(
                    f"{destination} answered HTTP {status} with invalid JSON",
                    status=status,
                    destination=destination,
                ) from None
        if 200 <= status < 300:
            return parsed
        errcode = parsed.get("errcode") if isinstance(parsed, dict) else None
        error = parsed.get("error") if isinstance(parsed, dict) else None
        message = f"{destination} answered HTTP {status}"
        if isinstance(errcode, str):
            message += f" {errcode}"
        if isinstance(error, str) and error:
            message += f": {error[:200]}"
        raise FederationError(
            message,
            status=status,
            errcode=errcode if isinstance(errcode, str) else None,
            body=parsed,
            destination=destination,
        )

    async def request_raw(
        self,
        destination: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        json: Any | None = None,
        signed: bool = True,
        timeout_s: float | None = None,
        max_bytes: int | None = None,
    ) -> RawResponse:
        """Send a request and return (status, headers, body) whatever the status (for media).

        The body is streamed and refused past ``max_bytes`` (default: the media cap).
        """
        cap = self._max_media_bytes if max_bytes is None else max_bytes
        return await self._send(destination, method, path, query, json, signed, timeout_s, cap)

    async def _send(
        self,
        destination: str,
        method: str,
        path: str,
        query: Mapping[str, str | Sequence[str]] | None,
        json: Any | None,
        signed: bool,
        timeout_s: float | None,
        max_bytes: int,
    ) -> RawResponse:
        method = method.upper()
        uri = build_uri(path, query)
        if not is_valid_server_name(destination):  # before the signer sees it
            raise DestinationUnreachable(
                "destination is not a valid server name", destination=destination
            )
        if json is None and method in _BODY_METHODS:
            json = {}
        headers: dict[str, str] = {}
        data: bytes | None = None
        if json is not None:
            data = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        if signed:
            headers["Authorization"] = self._sign(destination, method, uri, json)
        try:
            async with asyncio.timeout(self._timeout_s if timeout_s is None else timeout_s):
                dest = await self._resolve(destination)
                headers["Host"] = dest.host_header
                return await self._exchange(dest, method, uri, headers, data, max_bytes)
        except FederationError:
            raise
        except Exception as exc:
            if _blocked_in(exc):
                raise DestinationDenied(
                    f"{destination} resolves to a denied address", destination=destination
                ) from None
            raise DestinationUnreachable(
                f"{destination}: {_describe(exc)}", destination=destination
            ) from None

    async def _resolve(self, destination: str) -> Destination:
        dest = await self._resolver.resolve(destination)
        # aiohttp connects to IP literals without asking the resolver: check them here.
        address = literal_address(dest.host)
        if (
            address is not None
            and self._policy is not None
            and not self._policy.is_allowed(address)
        ):
            raise DestinationDenied(
                f"{destination} points at a denied address", destination=destination
            )
        return dest

    async def _exchange(
        self,
        dest: Destination,
        method: str,
        uri: str,
        headers: dict[str, str],
        data: bytes | None,
        max_bytes: int,
    ) -> RawResponse:
        path, _, query_string = uri.partition("?")
        url = URL.build(
            scheme="https",
            host=dest.host,
            port=dest.port,
            path=path,
            query_string=query_string,
            encoded=True,
        )
        async with self._get_session().request(
            method,
            url,
            headers=headers,
            data=data,
            ssl=self._ssl,
            server_hostname=dest.tls_name,
            allow_redirects=False,
        ) as resp:
            too_large = ResponseTooLarge(
                f"{dest.server_name} sent more than {max_bytes} bytes",
                status=resp.status,
                destination=dest.server_name,
            )
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise too_large
            body = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise too_large
            return RawResponse(resp.status, resp.headers, bytes(body))

    async def close(self) -> None:
        """Close the pooled session and the resolver's; a later request opens new ones."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._resolver.close()
