"""Downloads: authenticated and deprecated endpoints, headers, ranges and the freeze."""

from __future__ import annotations

from urllib.parse import quote

from harness import RunningServer, logged_in_user
from media_helpers import DOWNLOAD, media_path, upload

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
