"""FederationClient against a real aiohttp HTTPS server on loopback standing in for a peer.

The peer's certificate is self-signed and generated here, so the three TLS modes can be told
apart: not verified, verified against the OS store (refused), verified against a context that
trusts it. ``allow_private_destinations`` must be on to reach loopback at all, which is also
what lets the tests show the guard refusing it when off.
(Named ``test_federation_client`` rather than ``test_client``: test basenames must be unique
across the tree, which has no ``__init__.py`` files.)
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from myelin.services.federation.client import (
    DestinationDenied,
    DestinationUnreachable,
    FederationClient,
    FederationError,
    ResponseTooLarge,
    build_uri,
)
from myelin.services.federation.discovery import ServerResolver, WellKnownResponse


def make_cert(directory: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for *.example.test and 127.0.0.1: (cert, key, PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "myelin test peer")])
    now = datetime.datetime.now(datetime.UTC)
    sans = [x509.DNSName("*.example.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
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
    """Names under .example.test resolve to 127.0.0.1; anything else does not resolve."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if not host.endswith(".example.test"):
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
class Peer:
    port: int
    ca_pem: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def peer(cert: tuple[Path, Path, str]) -> AsyncIterator[Peer]:
    state = Peer(port=0, ca_pem=cert[2])

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peername = request.transport.get_extra_info("peername") if request.transport else None
        state.seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "authorization": request.headers.get("Authorization"),
                "host": request.headers.get("Host"),
                "content_type": request.headers.get("Content-Type"),
                "cookie": request.headers.get("Cookie"),
                "body": body,
                "client_port": peername[1] if peername else None,
            }
        )
        resp = web.json_response({"ok": True, "method": request.method})
        resp.set_cookie("tracker", "x")
        return resp

    async def error(request: web.Request) -> web.StreamResponse:
        return web.json_response({"errcode": "M_FORBIDDEN", "error": "go away"}, status=403)

    async def html_error(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="<html>Bad gateway</html>")

    async def bad_json(request: web.Request) -> web.StreamResponse:
        return web.Response(text="{not json", content_type="application/json")

    async def slow(request: web.Request) -> web.StreamResponse:
        await state.release.wait()
        return web.json_response({})

    async def big(request: web.Request) -> web.StreamResponse:
        return web.json_response({"pad": "x" * 5000})

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"pad": "')
        for _ in range(10):
            await resp.write(b"x" * 1000)
        await resp.write(b'"}')
        return resp

    async def media(request: web.Request) -> web.StreamResponse:
        status = int(request.query.get("status", "200"))
        return web.Response(
            status=status,
            body=b"\x89PNG" + bytes(range(256)),
            headers={"Content-Type": "image/png"},
        )

    app = web.Application()
    app.router.add_route("*", "/_matrix/federation/v1/echo/{tail:.*}", echo)
    app.router.add_get("/_matrix/federation/v1/error", error)
    app.router.add_get("/_matrix/federation/v1/html_error", html_error)
    app.router.add_get("/_matrix/federation/v1/bad_json", bad_json)
    app.router.add_get("/_matrix/federation/v1/slow", slow)
    app.router.add_get("/_matrix/federation/v1/big", big)
    app.router.add_get("/_matrix/federation/v1/big_chunked", big_chunked)
    app.router.add_get("/_matrix/federation/v1/media", media)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert[0], cert[1])
    tls.sni_callback = lambda _sock, name, _ctx: state.sni.append(name)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state
    state.release.set()
    await runner.cleanup()


class Signer:
    """Stands in for the X-Matrix signer: a distinct header for every distinct input."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, Any]] = []

    def __call__(self, destination: str, method: str, uri: str, content: Any | None) -> str:
        self.calls.append((destination, method, uri, content))
        digest = hashlib.sha256(orjson.dumps([destination, method, uri, content])).hexdigest()
        return f'X-Matrix origin="origin.test",destination="{destination}",sig="{digest}"'


async def _no_well_known(_hostname: str) -> WellKnownResponse:
    return WellKnownResponse(404, b"")


async def _no_srv(_name: str) -> list[tuple[str, int, int, int]]:
    return []


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., FederationClient]]:
    made: list[FederationClient] = []

    def factory(sign: Signer | None = None, **kwargs: Any) -> FederationClient:
        resolver = ServerResolver(srv_lookup=_no_srv, well_known_getter=_no_well_known)
        options: dict[str, Any] = {
            "verify_tls": False,
            "allow_private_destinations": True,
            "dns_resolver": StaticResolver(),
        }
        options.update(kwargs)
        client = FederationClient("origin.test", sign or Signer(), resolver, **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()


# -- TLS -----------------------------------------------------------------------------------


async def test_unverified_tls_accepted_when_verification_off(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    result = await make_client().request(
        f"127.0.0.1:{peer.port}", "GET", "/_matrix/federation/v1/echo/x"
    )
    assert result == {"ok": True, "method": "GET"}


async def test_self_signed_refused_with_verification_on(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    client = make_client(verify_tls=True)  # the OS trust store
    with pytest.raises(DestinationUnreachable) as info:
        await client.request(f"127.0.0.1:{peer.port}", "GET", "/_matrix/federation/v1/echo/x")
    assert info.value.status == 0
    assert str(info.value) == f"127.0.0.1:{peer.port}: TLS certificate verification failed"
    assert peer.seen == []


async def test_verified_when_certificate_is_trusted(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    client = make_client(verify_tls=True, ssl_context=peer.trust())
    await client.request(f"127.0.0.1:{peer.port}", "GET", "/_matrix/federation/v1/echo/ip")
    await client.request(
        f"remote.example.test:{peer.port}", "GET", "/_matrix/federation/v1/echo/name"
    )
    # IP literal: no SNI, the certificate's IP address was checked; host name: SNI sent.
    assert peer.sni == [None, "remote.example.test"]
    assert [s["host"] for s in peer.seen] == [
        f"127.0.0.1:{peer.port}",
        f"remote.example.test:{peer.port}",
    ]


async def test_certificate_must_match_the_host_header_name(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    client = make_client(verify_tls=True, ssl_context=peer.trust(), dns_resolver=_AllLoopback())
    with pytest.raises(DestinationUnreachable, match="TLS certificate verification failed"):
        await client.request(f"elsewhere.test:{peer.port}", "GET", "/_matrix/federation/v1/echo/x")
    assert peer.sni == ["elsewhere.test"]
    assert peer.seen == []


class _AllLoopback(StaticResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
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


# -- private destinations ------------------------------------------------------------------


@pytest.fixture
async def tcp_counter() -> AsyncIterator[tuple[int, list[int]]]:
    """A plain TCP listener on loopback that counts the connections it accepts."""
    accepted: list[int] = []

    async def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    srv = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    yield srv.sockets[0].getsockname()[1], accepted
    srv.close()
    await srv.wait_closed()


@pytest.mark.parametrize("name", ["127.0.0.1", "remote.example.test"])
async def test_private_destinations_refused_before_connecting(
    make_client: Callable[..., FederationClient], tcp_counter: tuple[int, list[int]], name: str
) -> None:
    port, accepted = tcp_counter
    client = make_client(allow_private_destinations=False)
    with pytest.raises(DestinationDenied) as info:
        await client.request(f"{name}:{port}", "GET", "/_matrix/federation/v1/version")
    assert info.value.status == 0 and "denied address" in str(info.value)
    await asyncio.sleep(0.05)
    assert accepted == []


# -- what the peer receives ----------------------------------------------------------------


async def test_authorization_uri_host_and_body_as_signed(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    sign = Signer()
    client = make_client(sign)
    destination = f"remote.example.test:{peer.port}"
    path = "/_matrix/federation/v1/echo/%21room%3Aexample.test"
    query = {"a": "b c+d", "u": "@alice:example.test", "v": ["1", "é/x"]}
    content = {"pdus": [], "origin": "origin.test", "n": 1}
    await client.request(destination, "put", path, query=query, json=content)

    uri = build_uri(path, query)
    assert uri == (path + "?a=b%20c%2Bd&u=%40alice%3Aexample.test&v=1&v=%C3%A9%2Fx")
    assert sign.calls == [(destination, "PUT", uri, content)]
    [seen] = peer.seen
    assert seen["method"] == "PUT"
    assert seen["raw_path"] == uri  # the request target is byte-for-byte what was signed
    assert seen["authorization"] == sign(destination, "PUT", uri, content)
    assert seen["host"] == destination
    assert seen["content_type"] == "application/json"
    assert orjson.loads(seen["body"]) == content


async def test_post_without_json_sends_empty_object_and_get_sends_none(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    sign = Signer()
    client = make_client(sign)
    destination = f"127.0.0.1:{peer.port}"
    await client.request(destination, "POST", "/_matrix/federation/v1/echo/p")
    await client.request(destination, "GET", "/_matrix/federation/v1/echo/g")
    assert [c[3] for c in sign.calls] == [{}, None]
    assert [s["body"] for s in peer.seen] == [b"{}", b""]


async def test_unsigned_requests_carry_no_authorization(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    sign = Signer()
    await make_client(sign).request(
        f"127.0.0.1:{peer.port}", "GET", "/_matrix/federation/v1/echo/u", signed=False
    )
    assert peer.seen[0]["authorization"] is None
    assert sign.calls == []


async def test_connections_pooled_and_cookies_ignored(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    client = make_client()
    for _ in range(3):
        await client.request(f"127.0.0.1:{peer.port}", "GET", "/_matrix/federation/v1/echo/c")
    assert len({s["client_port"] for s in peer.seen}) == 1
    assert [s["cookie"] for s in peer.seen] == [None, None, None]


def test_build_uri_refuses_unencoded_paths() -> None:
    for bad in ("no/slash", "/a b", "/a?b=1", "/a#frag", "/caf\u00e9"):
        with pytest.raises(ValueError):
            build_uri(bad)
    assert build_uri("/x", {}) == "/x"
    assert build_uri("/x", {"k": []}) == "/x"


# -- errors --------------------------------------------------------------------------------


async def test_json_error_maps_to_federation_error(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    with pytest.raises(FederationError) as info:
        await make_client().request(f"127.0.0.1:{peer.port}", "GET", "/_matrix/federation/v1/error")
    assert type(info.value) is FederationError
    assert (info.value.status, info.value.errcode) == (403, "M_FORBIDDEN")
    assert info.value.body == {"errcode": "M_FORBIDDEN", "error": "go away"}
    assert str(info.value) == f"127.0.0.1:{peer.port} answered HTTP 403 M_FORBIDDEN: go away"


async def test_non_json_error_and_invalid_json_success(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    client = make_client()
    with pytest.raises(FederationError) as info:
        await client.request(f"127.0.0.1:{peer.port}", "GET", "/_matrix/federation/v1/html_error")
    assert (info.value.status, info.value.errcode, info.value.body) == (502, None, None)
    with pytest.raises(FederationError, match="invalid JSON") as info:
        await client.request(f"127.0.0.1:{peer.port}", "GET", "/_matrix/federation/v1/bad_json")
    assert info.value.status == 200


async def test_timeout_is_unreachable(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    with pytest.raises(DestinationUnreachable) as info:
        await make_client().request(
            f"127.0.0.1:{peer.port}", "GET", "/_matrix/federation/v1/slow", timeout_s=0.2
        )
    assert str(info.value) == f"127.0.0.1:{peer.port}: timed out"
    assert info.value.status == 0 and info.value.errcode is None


async def test_refused_unresolvable_and_invalid_destinations_are_unreachable(
    make_client: Callable[..., FederationClient],
) -> None:
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    sign = Signer()
    client = make_client(sign)
    cases = {
        f"127.0.0.1:{closed_port}": "could not connect",
        "nowhere.test:8448": "could not resolve host",
        "not a server name": "destination is not a valid server name",
    }
    for destination, message in cases.items():
        with pytest.raises(DestinationUnreachable) as info:
            await client.request(destination, "GET", "/_matrix/federation/v1/version")
        assert message in str(info.value)
        assert "Traceback" not in str(info.value) and info.value.__cause__ is None
    assert "not a server name" not in [call[0] for call in sign.calls]  # refused before signing


@pytest.mark.parametrize(
    "path", ["/_matrix/federation/v1/big", "/_matrix/federation/v1/big_chunked"]
)
async def test_oversized_responses_refused(
    peer: Peer, make_client: Callable[..., FederationClient], path: str
) -> None:
    client = make_client(max_json_bytes=4000)
    with pytest.raises(ResponseTooLarge) as info:
        await client.request(f"127.0.0.1:{peer.port}", "GET", path)
    assert info.value.status == 200
    # The same answer fits under a larger cap.
    result = await make_client(max_json_bytes=20_000).request(f"127.0.0.1:{peer.port}", "GET", path)
    assert len(result["pad"]) >= 5000


# -- raw requests (media) ------------------------------------------------------------------


async def test_request_raw_returns_status_headers_and_bytes(
    peer: Peer, make_client: Callable[..., FederationClient]
) -> None:
    client = make_client()
    destination = f"127.0.0.1:{peer.port}"
    status, headers, body = await client.request_raw(
        destination, "GET", "/_matrix/federation/v1/media"
    )
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == b"\x89PNG" + bytes(range(256))
    raw = await client.request_raw(
        destination, "GET", "/_matrix/federation/v1/media", query={"status": "404"}
    )
    assert raw.status == 404  # no exception: the caller decides
    with pytest.raises(ResponseTooLarge):
        await client.request_raw(destination, "GET", "/_matrix/federation/v1/media", max_bytes=100)
