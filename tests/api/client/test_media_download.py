"""Downloads: authenticated and deprecated endpoints, headers, ranges and the freeze."""

from __future__ import annotations

import hashlib
import io
from urllib.parse import quote

from PIL import Image

from federation_fixtures import FederatingFactory
from harness import RunningServer, logged_in_user
from media_helpers import DOWNLOAD, THUMBNAIL, media_path, upload, upload_ok


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 90, 200)).save(out, "PNG")
    return out.getvalue()


CSP = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
       "style-src 'unsafe-inline'; object-src 'self';")


async def test_safety_headers_on_every_download(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    _, body = await upload(alice, b"<html><script>alert(1)</script></html>", "text/html",
                           "page.html")
    response = await alice.get(f"{DOWNLOAD}/{media_path(str(body['content_uri']))}")
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    # text/html is not on the spec's inline list.
    assert response.headers["Content-Disposition"] == 'attachment; filename="page.html"'


async def test_inline_only_for_safe_types(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    for content_type, kind in [("image/png", "inline"), ("video/mp4", "inline"),
                               ("text/plain; charset=utf-8", "inline"),
                               ("image/svg+xml", "attachment"),
                               ("application/javascript", "attachment"),
                               ("application/pdf", "attachment")]:
        _, body = await upload(alice, b"data", content_type)
        response = await alice.get(f"{DOWNLOAD}/{media_path(str(body['content_uri']))}")
        assert response.headers["Content-Type"] == content_type
        assert response.headers["Content-Disposition"] == kind, content_type


async def test_non_ascii_and_quoted_filenames(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    _, body = await upload(alice, b"x", "text/plain", "résumé 日本.txt")
    response = await alice.get(f"{DOWNLOAD}/{media_path(str(body['content_uri']))}")
    assert response.headers["Content-Disposition"] == (
        "inline; filename*=utf-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.txt")
    _, body = await upload(alice, b"x", "text/plain", 'say "hi".txt')
    response = await alice.get(f"{DOWNLOAD}/{media_path(str(body['content_uri']))}")
    assert response.headers["Content-Disposition"] == (
        "inline; filename*=utf-8''say%20%22hi%22.txt")


async def test_filename_override_in_path(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    _, body = await upload(alice, b"x", "image/png", "original.png")
    path = f"{DOWNLOAD}/{media_path(str(body['content_uri']))}/{quote('über.png')}"
    response = await alice.get(path)
    assert response.status == 200
    assert response.headers["Content-Disposition"] == "inline; filename*=utf-8''%C3%BCber.png"


async def test_range_requests(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    data = bytes(range(256)) * 40
    _, body = await upload(alice, data, "application/octet-stream")
    path = f"{DOWNLOAD}/{media_path(str(body['content_uri']))}"
    response = await alice.get(path, headers={"Range": "bytes=100-199"})
    assert response.status == 206
    assert response.body == data[100:200]
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    response = await alice.get(path, headers={"Range": "bytes=-10"})
    assert response.body == data[-10:]
    response = await alice.get(path, headers={"Range": f"bytes={len(data) + 5}-"})
    assert response.status == 416


async def test_head_gives_headers_only(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    _, body = await upload(alice, b"0123456789", "text/plain")
    response = await alice.request("HEAD", f"{DOWNLOAD}/{media_path(str(body['content_uri']))}")
    assert response.status == 200
    assert response.headers["Content-Length"] == "10"
    assert response.body == b""


async def test_unknown_and_malformed_media(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    for path in ["test.local/doesNotExist", "test.local/..%2F..%2Fetc%2Fpasswd",
                 "test.local/has.dot", "bad%20server/abc", "remote.example/bad.id"]:
        response = await alice.get(f"{DOWNLOAD}/{path}")
        assert response.status == 404, path
        assert response.json["errcode"] == "M_NOT_FOUND"
    # A server that cannot be reached (reachable ones: tests/federation/test_synapse_media.py).
    response = await alice.get(f"{DOWNLOAD}/unreachable.invalid/abc")
    assert response.status == 502 and response.json["errcode"] == "M_UNKNOWN"


async def test_authenticated_download_needs_a_token(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    _, body = await upload(alice, b"secret", "text/plain")
    response = await homeserver.client.get(f"{DOWNLOAD}/{media_path(str(body['content_uri']))}")
    assert response.status == 401
    assert response.json["errcode"] == "M_MISSING_TOKEN"


async def test_legacy_download_is_frozen_by_default(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    _, body = await upload(alice, b"new media", "text/plain")
    ref = media_path(str(body["content_uri"]))
    for version in ("v3", "r0", "v1"):
        response = await homeserver.client.get(f"/_matrix/media/{version}/download/{ref}")
        assert response.status == 404, version
        assert response.json["errcode"] == "M_NOT_FOUND"


async def test_media_from_before_the_freeze_stays_public(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"freeze_unauthenticated": False})
    alice = await logged_in_user(server, "alice")
    _, body = await upload(alice, b"old media", "text/plain", "old.txt")
    ref = media_path(str(body["content_uri"]))
    response = await server.client.get(f"/_matrix/media/v3/download/{ref}")
    assert response.status == 200
    assert response.body == b"old media"
    assert response.headers["Content-Security-Policy"] == CSP
    response = await server.client.get(f"/_matrix/media/r0/download/{ref}/renamed.txt")
    assert response.headers["Content-Disposition"] == 'inline; filename="renamed.txt"'


async def test_legacy_endpoints_can_be_switched_off(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"freeze_unauthenticated": False,
                                       "legacy_endpoints": False})
    alice = await logged_in_user(server, "alice")
    _, body = await upload(alice, b"old media", "text/plain")
    ref = media_path(str(body["content_uri"]))
    response = await server.client.get(f"/_matrix/media/v3/download/{ref}")
    assert response.status == 404
    assert response.json["errcode"] == "M_UNRECOGNIZED"
    assert (await alice.get(f"{DOWNLOAD}/{ref}")).status == 200


async def test_frozen_legacy_endpoints_never_fetch_remote_media(homeserver: RunningServer) -> None:
    """Under the freeze, whatever a no-token request would cache is frozen at once, so it is
    refused before any federation request: an unreachable server gives 404, not 502."""
    for path in ("/_matrix/media/v3/download/unreachable.invalid/abc",
                 "/_matrix/media/r0/download/unreachable.invalid/abc/name.txt",
                 "/_matrix/media/v3/thumbnail/unreachable.invalid/abc?width=32&height=32"):
        response = await homeserver.client.get(path)
        assert (response.status, response.json["errcode"]) == (404, "M_NOT_FOUND"), path
    alice = await logged_in_user(homeserver, "alice")
    response = await alice.get(f"{DOWNLOAD}/unreachable.invalid/abc")  # this one does try
    assert (response.status, response.json["errcode"]) == (502, "M_UNKNOWN")


async def test_legacy_allow_remote_false_does_not_fetch(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"freeze_unauthenticated": False})
    legacy = "/_matrix/media/v3"
    for path in ("download/unreachable.invalid/abc", "download/unreachable.invalid/abc/f.txt",
                 "thumbnail/unreachable.invalid/abc?width=32&height=32"):
        sep = "&" if "?" in path else "?"
        response = await server.client.get(f"{legacy}/{path}{sep}allow_remote=false")
        assert (response.status, response.json["errcode"]) == (404, "M_NOT_FOUND"), path
        response = await server.client.get(f"{legacy}/{path}{sep}allow_remote=true")
        assert (response.status, response.json["errcode"]) == (502, "M_UNKNOWN"), path
    response = await server.client.get(f"{legacy}/download/unreachable.invalid/abc"
                                       "?allow_remote=no")
    assert (response.status, response.json["errcode"]) == (400, "M_INVALID_PARAM")
    # Local media is not remote: allow_remote=false serves it.
    alice = await logged_in_user(server, "alice")
    _, body = await upload(alice, b"local", "text/plain")
    ref = media_path(str(body["content_uri"]))
    response = await server.client.get(f"{legacy}/download/{ref}?allow_remote=false")
    assert response.status == 200 and response.body == b"local"


async def test_missing_blob_is_a_matrix_404(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"freeze_unauthenticated": False})
    alice = await logged_in_user(server, "alice")
    picture = png(64, 48)
    refs = [media_path(str((await upload(alice, data, kind))[1]["content_uri"]))
            for data, kind in ((b"will vanish", "text/plain"), (picture, "image/png"))]
    await server.services.media.close()  # waits for the upload's thumbnails to be made
    for data in (b"will vanish", picture):
        path = server.services.media.blobs.local_path(hashlib.sha256(data).hexdigest())
        path.unlink()
    for path in (f"{DOWNLOAD}/{refs[0]}", f"{DOWNLOAD}/{refs[0]}/name.txt",
                 f"/_matrix/media/v3/download/{refs[0]}", f"{DOWNLOAD}/{refs[1]}",
                 f"{THUMBNAIL}/{refs[1]}?width=800&height=600",  # the original would be sent
                 f"{THUMBNAIL}/{refs[1]}?width=20&height=20&method=scale"):  # needs decoding
        response = await alice.get(path)
        assert response.status == 404, path
        assert response.headers["Content-Type"].startswith("application/json"), path
        assert response.json["errcode"] == "M_NOT_FOUND", path


async def test_remote_media_over_the_limit_is_502_too_large(
        federating_server: FederatingFactory) -> None:
    remote = await federating_server()
    local = await federating_server(media={"max_upload_bytes": 20_000})
    sue = await logged_in_user(remote, "sue")
    alice = await logged_in_user(local, "alice")
    # Far past the limit: the federation client stops reading (ResponseTooLarge). Just past
    # it: the whole answer arrives and the media part is measured.
    for size in (200_000, 30_000):
        ref = await upload_ok(sue, b"z" * size, "application/octet-stream")
        response = await alice.get(f"{DOWNLOAD}/{ref}")
        assert (response.status, response.json["errcode"]) == (502, "M_TOO_LARGE"), size
    ref = await upload_ok(sue, b"small enough", "text/plain")
    assert (await alice.get(f"{DOWNLOAD}/{ref}")).body == b"small enough"
    # The remote server lost the bytes: it answers a Matrix 404, which reaches the client.
    ref = await upload_ok(sue, b"lost on the remote", "text/plain")
    remote.services.media.blobs.local_path(hashlib.sha256(b"lost on the remote").hexdigest()
                                           ).unlink()
    response = await alice.get(f"{DOWNLOAD}/{ref}")
    assert (response.status, response.json["errcode"]) == (404, "M_NOT_FOUND")


async def test_allow_remote_false_serves_only_cached_remote_media(
        federating_server: FederatingFactory) -> None:
    remote = await federating_server()
    local = await federating_server(media={"freeze_unauthenticated": False})
    sue = await logged_in_user(remote, "sue")
    ref = await upload_ok(sue, b"from afar", "text/plain")
    legacy = f"/_matrix/media/v3/download/{ref}"
    response = await local.client.get(f"{legacy}?allow_remote=false")
    assert (response.status, response.json["errcode"]) == (404, "M_NOT_FOUND")
    assert await local.services.db.fetchval("SELECT COUNT(*) FROM media") == 0  # not fetched
    response = await local.client.get(legacy)  # freeze off: a no-token request may fetch
    assert response.status == 200 and response.body == b"from afar"
    response = await local.client.get(f"{legacy}?allow_remote=false")  # cached now
    assert response.status == 200 and response.body == b"from afar"
