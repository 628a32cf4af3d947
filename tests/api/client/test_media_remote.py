"""Other servers' media over real HTTP: thumbnails asked from the origin's federation
thumbnail endpoint and cached, the fallback for origins without it, the pixel limit as
502 M_TOO_LARGE, and multipart answers whose media part is a ``Location`` to follow (through
the SSRF guards, under the size cap).

The origin is a second Myelin where its real behaviour matters, and otherwise a small fake
federation server on loopback (TLS, IP-literal server name, as federating test Myelins are)
whose answers each test chooses and whose requests it counts.
"""

from __future__ import annotations

import io
import ssl
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from myelin.services.media.remote import RemoteMediaFetcher
from myelin.services.media.safe_fetch import SafeFetcher

from federation_fixtures import FederatingFactory, FederatingServer
from harness import logged_in_user
from media_helpers import DOWNLOAD, THUMBNAIL, upload_ok
from synapse_harness import self_signed_certificate

FEDERATION_MEDIA = "/_matrix/federation/v1/media"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 160, 90)).save(out, "PNG")
    return out.getvalue()


def size_of(body: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(body)) as im:
        return im.size


def multipart(part_headers: dict[str, str], body: bytes = b"") -> web.Response:
    """A federation media answer: the JSON part, then ``part_headers`` and ``body``."""
    boundary = uuid.uuid4().hex
    head = "".join(f"{name}: {value}\r\n" for name, value in part_headers.items())
    payload = (f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
               f"--{boundary}\r\n{head}\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    return web.Response(body=payload,
                        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})


def unrecognized() -> web.Response:
    return web.json_response({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"}, status=404)


Answer = Callable[[web.Request], web.Response]


class FakeOrigin:
    """A federation server that answers only media requests, as each test says, plus a plain
    HTTP site on loopback for ``Location`` targets. Unset answers: 404 M_UNRECOGNIZED, as a
    server without the endpoint gives."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.requests: list[web.Request] = []
        self.download: Answer | None = None
        self.thumbnail: Answer | None = None
        self.files: dict[str, tuple[bytes, str, str | None]] = {}
        self.port = 0
        self.files_port = 0

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.port}"

    def file_url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.files_port}/files/{name}"

    def federation_app(self) -> web.Application:
        async def download(request: web.Request) -> web.Response:
            self.hits["download"] += 1
            self.requests.append(request)
            return self.download(request) if self.download else unrecognized()

        async def thumbnail(request: web.Request) -> web.Response:
            self.hits["thumbnail"] += 1
            self.requests.append(request)
            return self.thumbnail(request) if self.thumbnail else unrecognized()

        async def legacy(request: web.Request) -> web.Response:
            self.hits["legacy"] += 1
            return unrecognized()

        app = web.Application()
        app.router.add_get(f"{FEDERATION_MEDIA}/download/{{media_id}}", download)
        app.router.add_get(f"{FEDERATION_MEDIA}/thumbnail/{{media_id}}", thumbnail)
        app.router.add_get("/_matrix/media/v3/download/{server}/{media_id}", legacy)
        return app

    def files_app(self) -> web.Application:
        async def serve(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            self.hits[f"file:{name}"] += 1
            data, content_type, disposition = self.files[name]
            headers = {"Content-Disposition": disposition} if disposition else {}
            return web.Response(body=data, content_type=content_type, headers=headers)

        app = web.Application()
        app.router.add_get("/files/{name}", serve)
        return app


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[FakeOrigin]:
    fake = FakeOrigin()
    folder = tmp_path / "origin"
    folder.mkdir()
    cert, key = self_signed_certificate(folder)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    runners = [web.AppRunner(fake.federation_app()), web.AppRunner(fake.files_app())]
    for runner in runners:
        await runner.setup()
    await web.TCPSite(runners[0], "127.0.0.1", 0, ssl_context=tls).start()
    await web.TCPSite(runners[1], "127.0.0.1", 0).start()
    fake.port = runners[0].addresses[0][1]
    fake.files_port = runners[1].addresses[0][1]
    yield fake
    for runner in runners:
        await runner.cleanup()


def serve_bytes(data: bytes, content_type: str = "image/png",
                disposition: str = "inline") -> Answer:
    return lambda request: multipart({"Content-Type": content_type,
                                      "Content-Disposition": disposition}, data)


def redirect_to(url: str) -> Answer:
    return lambda request: multipart({"Location": url})


def allow_loopback_redirects(server: FederatingServer) -> None:
    """Let this server follow ``Location`` parts to loopback (the fake origin's file site):
    by default the redirect fetcher refuses private and loopback addresses."""
    services = server.services
    max_bytes = services.config.media.max_upload_bytes
    services.media.remote = RemoteMediaFetcher(
        services.federation_client, max_bytes, redirect_fetcher=SafeFetcher(
            allowed_ranges=("127.0.0.0/8",), max_bytes=max_bytes, timeout_s=10))


async def get_thumbnail(client: Any, ref: str, width: int, height: int,
                        method: str = "scale") -> Any:
    return await client.get(f"{THUMBNAIL}/{ref}?width={width}&height={height}&method={method}")


# -- thumbnails from the origin ------------------------------------------------------------


async def test_remote_thumbnail_is_asked_from_the_origin_and_cached(
        federating_server: FederatingFactory) -> None:
    remote = await federating_server()
    local = await federating_server()
    sue = await logged_in_user(remote, "sue")
    alice = await logged_in_user(local, "alice")
    ref = await upload_ok(sue, png(1000, 800), "image/png")
    first = await get_thumbnail(alice, ref, 50, 40, "crop")  # a size made on request
    assert first.status == 200, first
    assert first.headers["Content-Type"] == "image/png"
    assert size_of(first.body) == (50, 40)
    # Only the thumbnail crossed: the original was never fetched.
    db = local.services.db
    assert await db.fetchval("SELECT COUNT(*) FROM media") == 0
    assert await db.fetchval("SELECT COUNT(*) FROM media_thumbnails WHERE origin = $1",
                             remote.server_name) == 1
    await remote.server.stop()  # the origin is gone: the cached thumbnail still answers
    again = await get_thumbnail(alice, ref, 50, 40, "crop")
    assert again.status == 200 and again.body == first.body
    other = await get_thumbnail(alice, ref, 60, 40, "crop")  # not cached: needs the origin
    assert (other.status, other.json["errcode"]) == (502, "M_UNKNOWN")


async def test_remote_image_past_the_pixel_limit_is_502_too_large(
        federating_server: FederatingFactory) -> None:
    remote = await federating_server()
    local = await federating_server(media={"max_image_pixels": 10_000})
    sue = await logged_in_user(remote, "sue")
    alice = await logged_in_user(local, "alice")
    ref = await upload_ok(sue, png(1000, 800), "image/png")
    # The origin's 600x480 thumbnail is past our limit ...
    response = await get_thumbnail(alice, ref, 640, 480)
    assert (response.status, response.json["errcode"]) == (502, "M_TOO_LARGE")
    # ... and so is the original, once cached here: remote content, so 502 and not 413.
    assert (await alice.get(f"{DOWNLOAD}/{ref}")).status == 200
    response = await get_thumbnail(alice, ref, 32, 32, "crop")
    assert (response.status, response.json["errcode"]) == (502, "M_TOO_LARGE")
    # Our own image past the limit stays a 413.
    own = await upload_ok(alice, png(1000, 800), "image/png")
    response = await get_thumbnail(alice, own, 32, 32, "crop")
    assert (response.status, response.json["errcode"]) == (413, "M_TOO_LARGE")


async def test_thumbnail_request_is_signed_and_carries_the_parameters(
        origin: FakeOrigin, federating_server: FederatingFactory) -> None:
    local = await federating_server()
    alice = await logged_in_user(local, "alice")
    origin.thumbnail = serve_bytes(png(40, 30))
    response = await alice.get(f"{THUMBNAIL}/{origin.server_name}/pic?width=32&height=24"
                               "&method=crop&animated=true&timeout_ms=3000")
    assert response.status == 200, response
    assert size_of(response.body) == (40, 30)
    request = origin.requests[-1]
    assert request.headers["Authorization"].startswith("X-Matrix ")
    assert dict(request.query) == {"width": "32", "height": "24", "method": "crop",
                                   "animated": "true", "timeout_ms": "3000"}
    assert origin.hits == {"thumbnail": 1}


async def test_origin_without_thumbnail_endpoint_falls_back_to_the_original(
        origin: FakeOrigin, federating_server: FederatingFactory) -> None:
    local = await federating_server()
    alice = await logged_in_user(local, "alice")
    origin.download = serve_bytes(png(1000, 800))  # thumbnail: 404 M_UNRECOGNIZED
    ref = f"{origin.server_name}/pic"
    response = await get_thumbnail(alice, ref, 32, 32, "crop")
    assert response.status == 200, response
    assert size_of(response.body) == (32, 32)
    assert origin.hits == {"thumbnail": 1, "download": 1}
    # The original is cached now: other sizes are made here, without asking again.
    response = await get_thumbnail(alice, ref, 96, 96, "crop")
    assert response.status == 200 and size_of(response.body) == (96, 96)
    assert origin.hits == {"thumbnail": 1, "download": 1}


async def test_unusable_thumbnail_from_the_origin_falls_back_to_the_original(
        origin: FakeOrigin, federating_server: FederatingFactory) -> None:
    local = await federating_server()
    alice = await logged_in_user(local, "alice")
    origin.thumbnail = serve_bytes(b"<html><script>alert(1)</script></html>", "image/png")
    origin.download = serve_bytes(png(1000, 800))
    response = await get_thumbnail(alice, f"{origin.server_name}/pic", 32, 32, "crop")
    assert response.status == 200, response
    assert response.headers["Content-Type"] == "image/png"
    assert size_of(response.body) == (32, 32)
    assert origin.hits == {"thumbnail": 1, "download": 1}


async def test_pixel_limit_on_the_fallback_and_on_sent_thumbnails(
        origin: FakeOrigin, federating_server: FederatingFactory) -> None:
    local = await federating_server(media={"max_image_pixels": 10_000})
    alice = await logged_in_user(local, "alice")
    origin.download = serve_bytes(png(1000, 800))
    response = await get_thumbnail(alice, f"{origin.server_name}/big", 32, 32, "crop")
    assert (response.status, response.json["errcode"]) == (502, "M_TOO_LARGE")
    origin.thumbnail = serve_bytes(png(200, 200))  # a "thumbnail" past the limit
    response = await get_thumbnail(alice, f"{origin.server_name}/bomb", 32, 32, "crop")
    assert (response.status, response.json["errcode"]) == (502, "M_TOO_LARGE")


async def test_origin_errors_reach_the_client(
        origin: FakeOrigin, federating_server: FederatingFactory) -> None:
    local = await federating_server()
    alice = await logged_in_user(local, "alice")
    answers = {
        "gone": (web.json_response({"errcode": "M_NOT_FOUND", "error": "x"}, status=404),
                 (404, "M_NOT_FOUND")),
        "pdf": (web.json_response({"errcode": "M_UNKNOWN", "error": "x"}, status=400),
                (400, "M_UNKNOWN")),
        "huge": (web.json_response({"errcode": "M_TOO_LARGE", "error": "x"}, status=413),
                 (502, "M_TOO_LARGE")),
        "later": (web.json_response({"errcode": "M_NOT_YET_UPLOADED", "error": "x"},
                                    status=504), (504, "M_NOT_YET_UPLOADED")),
        "broken": (web.Response(status=500), (502, "M_UNKNOWN")),
    }
    origin.thumbnail = lambda request: answers[request.match_info["media_id"]][0]
    for media_id, (_, expected) in answers.items():
        response = await get_thumbnail(alice, f"{origin.server_name}/{media_id}", 32, 32)
        assert (response.status, response.json["errcode"]) == expected, media_id
    assert origin.hits["download"] == 0


# -- Location parts ------------------------------------------------------------------------


async def test_location_part_is_followed(
        origin: FakeOrigin, federating_server: FederatingFactory) -> None:
    local = await federating_server()
    allow_loopback_redirects(local)
    alice = await logged_in_user(local, "alice")
    origin.files["doc.txt"] = (b"redirected bytes", "text/plain",
                               'attachment; filename="doc.txt"')
    origin.download = redirect_to(origin.file_url("doc.txt"))
    response = await alice.get(f"{DOWNLOAD}/{origin.server_name}/doc")
    assert response.status == 200, response
    assert response.body == b"redirected bytes"
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers["Content-Disposition"] == 'inline; filename="doc.txt"'
    # The bytes are cached, not the URL.
    assert (await alice.get(f"{DOWNLOAD}/{origin.server_name}/doc")).body == b"redirected bytes"
    assert origin.hits["download"] == 1 and origin.hits["file:doc.txt"] == 1
    # The same for a thumbnail.
    origin.files["thumb.png"] = (png(40, 30), "image/png", None)
    origin.thumbnail = redirect_to(origin.file_url("thumb.png"))
    for _ in range(2):
        response = await get_thumbnail(alice, f"{origin.server_name}/pic", 32, 24)
        assert response.status == 200 and size_of(response.body) == (40, 30)
    assert origin.hits["thumbnail"] == 1 and origin.hits["file:thumb.png"] == 1


async def test_location_part_is_held_to_the_size_limit(
        origin: FakeOrigin, federating_server: FederatingFactory) -> None:
    local = await federating_server(media={"max_upload_bytes": 20_000})
    allow_loopback_redirects(local)
    alice = await logged_in_user(local, "alice")
    origin.files["big.bin"] = (b"z" * 30_000, "application/octet-stream", None)
    origin.download = redirect_to(origin.file_url("big.bin"))
    response = await alice.get(f"{DOWNLOAD}/{origin.server_name}/big")
    assert (response.status, response.json["errcode"]) == (502, "M_TOO_LARGE")
    assert await local.services.db.fetchval("SELECT COUNT(*) FROM media") == 0


async def test_location_to_a_denied_address_is_refused(
        origin: FakeOrigin, federating_server: FederatingFactory) -> None:
    """The test Myelins allow private federation destinations; redirects still use the
    built-in denied ranges, so loopback is refused - as a literal before any connection, as
    a name after resolution."""
    local = await federating_server()
    alice = await logged_in_user(local, "alice")
    origin.files["doc.txt"] = (b"internal", "text/plain", None)
    for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]"):
        origin.download = redirect_to(origin.file_url("doc.txt", host))
        response = await alice.get(f"{DOWNLOAD}/{origin.server_name}/doc")
        assert (response.status, response.json["errcode"]) == (502, "M_UNKNOWN"), host
        assert "does not fetch from" in response.json["error"], host
    origin.thumbnail = redirect_to(origin.file_url("doc.txt"))
    response = await get_thumbnail(alice, f"{origin.server_name}/pic", 32, 32)
    assert (response.status, response.json["errcode"]) == (502, "M_UNKNOWN")
    assert origin.hits["file:doc.txt"] == 0
    assert await local.services.db.fetchval("SELECT COUNT(*) FROM media") == 0
