"""Uploads: POST /upload, /create + PUT, config, limits and quotas (client-server API,
"Content repository")."""

from __future__ import annotations

import asyncio

import aiohttp

from harness import RunningServer, logged_in_user
from media_helpers import CREATE, DOWNLOAD, UPLOAD, blob_files, media_path, upload, upload_ok


async def test_upload_and_download_round_trip(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    status, body = await upload(alice, b"hello media", "text/plain", "notes.txt")
    assert status == 200, body
    uri = str(body["content_uri"])
    assert uri.startswith("mxc://test.local/")
    response = await alice.get(f"{DOWNLOAD}/{media_path(uri)}")
    assert response.status == 200
    assert response.body == b"hello media"
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers["Content-Disposition"] == 'inline; filename="notes.txt"'


async def test_r0_upload_path_and_default_content_type(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    response = await alice.request("POST", "/_matrix/media/r0/upload", data=b"\x00\x01")
    assert response.status == 200, response
    download = await alice.get(f"{DOWNLOAD}/{media_path(response.json['content_uri'])}")
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"] == "attachment"


async def test_upload_requires_a_token(homeserver: RunningServer) -> None:
    response = await homeserver.client.request("POST", UPLOAD, data=b"x")
    assert response.status == 401
    assert response.json["errcode"] == "M_MISSING_TOKEN"


async def test_identical_uploads_share_one_blob(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    bob = await logged_in_user(homeserver, "bob")
    _, first = await upload(alice, b"same bytes")
    _, second = await upload(bob, b"same bytes")
    assert first["content_uri"] != second["content_uri"]
    assert len(blob_files(homeserver)) == 1


async def test_config_reports_the_upload_limit(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"max_upload_bytes": 1234})
    alice = await logged_in_user(server, "alice")
    for path in ("/_matrix/client/v1/media/config", "/_matrix/media/v3/config"):
        response = await alice.get(path)
        assert response.status == 200
        assert response.json == {"m.upload.size": 1234}


async def test_too_large_upload_is_refused_and_leaves_nothing(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"max_upload_bytes": 1000})
    alice = await logged_in_user(server, "alice")
    status, body = await upload(alice, b"x" * 1001)
    assert status == 413
    assert body["errcode"] == "M_TOO_LARGE"
    # Chunked, so the size is only known while streaming.

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"y" * 100

    async with alice.session.post(server.url + UPLOAD, data=chunks(),
                                  headers={"Authorization": f"Bearer {alice.token}"}) as resp:
        assert resp.status == 413
        assert (await resp.json())["errcode"] == "M_TOO_LARGE"
    assert blob_files(server) == []
    status, _ = await upload(alice, b"x" * 1000)
    assert status == 200


async def test_quota_is_enforced_per_user(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"user_quota_bytes": 100})
    alice = await logged_in_user(server, "alice")
    assert (await upload(alice, b"a" * 60))[0] == 200
    status, body = await upload(alice, b"b" * 60)
    assert status == 403
    assert body["errcode"] == "M_FORBIDDEN"
    assert (await upload(alice, b"c" * 40))[0] == 200
    bob = await logged_in_user(server, "bob")
    assert (await upload(bob, b"d" * 100))[0] == 200


async def test_concurrent_uploads_cannot_share_the_same_quota_room(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"user_quota_bytes": 100})
    alice = await logged_in_user(server, "alice")
    results = await asyncio.gather(*(upload(alice, bytes([65 + i]) * 60) for i in range(4)))
    assert sorted(status for status, _ in results) == [200, 403, 403, 403]
    assert await server.services.db.fetchval(
        "SELECT SUM(size) FROM media WHERE user_id = $1", "@alice:test.local") == 60


async def test_nothing_more_once_over_quota_not_even_zero_bytes(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"user_quota_bytes": 100})
    alice = await logged_in_user(server, "alice")
    ref = await upload_ok(alice, b"a" * 100)
    # Exactly at the quota an empty file still fits: it takes no room.
    assert (await upload(alice, b""))[0] == 200
    # Over it (the quota was lowered, or concurrent uploads each saw room): nothing is taken.
    await server.services.db.execute("UPDATE media SET size = 150 WHERE media_id = $1",
                                     ref.split("/")[1])
    status, body = await upload(alice, b"")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    reserved = (await alice.post(CREATE)).json["content_uri"]
    response = await alice.request("PUT", f"{UPLOAD}/{media_path(reserved)}", data=b"")
    assert (response.status, response.json["errcode"]) == (403, "M_FORBIDDEN")
    assert (await upload(alice, b"x"))[0] == 403
    bob = await logged_in_user(server, "bob")
    assert (await upload(bob, b""))[0] == 200


async def test_interrupted_upload_leaves_nothing_on_disk(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    host, port = homeserver.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {UPLOAD} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice.token}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: 100000\r\n\r\n".encode() + b"z" * 5000
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.3)
    assert blob_files(homeserver) == []
    assert (await upload(alice, b"still fine"))[0] == 200


async def test_expect_continue_is_answered(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    async with aiohttp.ClientSession() as session, session.post(
            homeserver.url + UPLOAD, data=b"e" * 4096, expect100=True,
            headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "text/plain"},
    ) as resp:
        assert resp.status == 200


async def test_over_quota_is_refused_before_100_continue(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"user_quota_bytes": 100})
    alice = await logged_in_user(server, "alice")
    await upload_ok(alice, b"a" * 60)
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        # Headers only: a server that answered 100 Continue would now wait for the body.
        writer.write(f"POST {UPLOAD} HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Bearer {alice.token}\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 60\r\nExpect: 100-continue\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 403"), status_line


async def test_create_then_upload(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    created = await alice.post(CREATE)
    assert created.status == 200, created
    uri = created.json["content_uri"]
    assert created.json["unused_expires_at"] > 0
    # Not uploaded yet: a download with a short timeout says so.
    pending = await alice.get(f"{DOWNLOAD}/{media_path(uri)}?timeout_ms=100")
    assert pending.status == 504
    assert pending.json["errcode"] == "M_NOT_YET_UPLOADED"
    put = await alice.request("PUT", f"{UPLOAD}/{media_path(uri)}?filename=a.txt", data=b"late",
                              headers={"Content-Type": "text/plain"})
    assert put.status == 200, put
    assert put.json == {}
    response = await alice.get(f"{DOWNLOAD}/{media_path(uri)}")
    assert response.body == b"late"
    again = await alice.request("PUT", f"{UPLOAD}/{media_path(uri)}", data=b"again")
    assert again.status == 409
    assert again.json["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"


async def test_download_waits_for_a_pending_upload(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    uri = (await alice.post(CREATE)).json["content_uri"]
    waiting = asyncio.ensure_future(alice.get(f"{DOWNLOAD}/{media_path(uri)}?timeout_ms=5000"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await alice.request("PUT", f"{UPLOAD}/{media_path(uri)}", data=b"arrived")
    response = await asyncio.wait_for(waiting, 3)
    assert response.status == 200
    assert response.body == b"arrived"


async def test_upload_to_reserved_id_checks_owner_and_existence(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    bob = await logged_in_user(homeserver, "bob")
    uri = (await alice.post(CREATE)).json["content_uri"]
    response = await bob.request("PUT", f"{UPLOAD}/{media_path(uri)}", data=b"x")
    assert response.status == 403
    assert response.json["errcode"] == "M_FORBIDDEN"
    response = await alice.request("PUT", f"{UPLOAD}/test.local/NeverCreated", data=b"x")
    assert response.status == 404
    assert response.json["errcode"] == "M_NOT_FOUND"
    response = await alice.request("PUT", f"{UPLOAD}/other.server/abc", data=b"x")
    assert response.status == 404


async def test_pending_reservations_are_limited(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"max_pending_uploads": 2})
    alice = await logged_in_user(server, "alice")
    assert (await alice.post(CREATE)).status == 200
    assert (await alice.post(CREATE)).status == 200
    response = await alice.post(CREATE)
    assert response.status == 429
    assert response.json["errcode"] == "M_LIMIT_EXCEEDED"


async def test_create_is_rate_limited(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(rate_limits={"enabled": True,
                                             "media_create": {"per_second": 0.1, "burst": 2}},
                                media={"max_pending_uploads": 100})
    alice = await logged_in_user(server, "alice")
    statuses = [(await alice.post(CREATE)).status for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_bad_content_type_and_filename(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    status, body = await upload(alice, b"x", filename="a" * 1001)
    assert status == 400
    assert body["errcode"] == "M_INVALID_PARAM"
