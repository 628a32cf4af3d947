"""Retention: expired reservations and media past its lifetime are deleted, blobs only once
nothing names them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from myelin.storage.stores.media import MediaStore

from harness import RunningServer, logged_in_user
from media_helpers import CREATE, DOWNLOAD, blob_files, media_path, upload

DAY_MS = 24 * 3600 * 1000


async def age(server: RunningServer, media_ref: str, days: float) -> None:
    origin, media_id = media_ref.split("/")
    await server.services.db.execute(
        "UPDATE media SET last_access_ts = $1 WHERE origin = $2 AND media_id = $3",
        int(time.time() * 1000 - days * DAY_MS), origin, media_id)


async def test_old_local_media_is_purged_and_shared_blobs_survive(
        homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    old = media_path(str((await upload(alice, b"shared"))[1]["content_uri"]))
    twin = media_path(str((await upload(alice, b"shared"))[1]["content_uri"]))
    lonely = media_path(str((await upload(alice, b"lonely"))[1]["content_uri"]))
    await age(homeserver, old, 10)
    await age(homeserver, lonely, 10)
    assert len(blob_files(homeserver)) == 2
    report = await homeserver.services.media_retention.purge(local_days=5)
    assert report.local_media == 2
    assert report.blobs_deleted == 1  # "shared" is still named by the twin
    assert (await alice.get(f"{DOWNLOAD}/{old}")).status == 404
    assert (await alice.get(f"{DOWNLOAD}/{lonely}")).status == 404
    assert (await alice.get(f"{DOWNLOAD}/{twin}")).body == b"shared"
    assert len(blob_files(homeserver)) == 1


async def test_downloads_keep_media_alive(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = media_path(str((await upload(alice, b"popular"))[1]["content_uri"]))
    await age(homeserver, ref, 10)
    assert (await alice.get(f"{DOWNLOAD}/{ref}")).status == 200  # refreshes last access
    report = await homeserver.services.media_retention.purge(local_days=5)
    assert report.local_media == 0
    assert (await alice.get(f"{DOWNLOAD}/{ref}")).status == 200


async def test_zero_days_keeps_everything(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = media_path(str((await upload(alice, b"forever"))[1]["content_uri"]))
    await age(homeserver, ref, 1000)
    report = await homeserver.services.media_retention.purge(local_days=0)
    assert report.local_media == 0


async def test_expired_reservations_are_purged(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = media_path((await alice.post(CREATE)).json["content_uri"])
    await homeserver.services.db.execute("UPDATE media SET expires_ts = 1 WHERE media_id = $1",
                                         ref.split("/")[1])
    response = await alice.request("PUT", f"/_matrix/media/v3/upload/{ref}", data=b"too late")
    assert response.status == 404
    report = await homeserver.services.media_retention.purge()
    assert report.expired_reservations == 1
    assert blob_files(homeserver) == []


async def test_remote_cache_uses_its_own_lifetime(homeserver: RunningServer) -> None:
    services = homeserver.services
    sha256 = await services.media.blobs.put_bytes(b"remote bytes")
    await services.db.execute(
        "INSERT INTO media (origin, media_id, user_id, content_type, upload_name, size, sha256,"
        " created_ts, uploaded_ts, expires_ts, last_access_ts, authenticated)"
        " VALUES ('remote.example', 'abc', NULL, 'text/plain', NULL, 12, $1, 0, 0, NULL, $2,"
        " TRUE)", sha256, int(time.time() * 1000 - 100 * DAY_MS))
    report = await services.media_retention.purge(local_days=0, remote_days=200)
    assert report.remote_media == 0
    report = await services.media_retention.purge(local_days=0)  # configured: 90 days
    assert report.remote_media == 1
    assert report.blobs_deleted == 1


async def test_purge_waits_for_an_identical_upload_that_found_the_blob(
        homeserver: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race: the last row naming a blob is purged while an upload of the same bytes has
    found that blob (so wrote none of its own) but not yet inserted its row."""
    alice = await logged_in_user(homeserver, "alice")
    old = media_path(str((await upload(alice, b"same bytes"))[1]["content_uri"]))
    await age(homeserver, old, 10)
    reached, go = asyncio.Event(), asyncio.Event()
    original = MediaStore.add_uploaded

    async def paused(self: MediaStore, *args: Any, **kwargs: Any) -> None:
        reached.set()
        await go.wait()
        await original(self, *args, **kwargs)

    monkeypatch.setattr(MediaStore, "add_uploaded", paused)
    uploading = asyncio.ensure_future(upload(alice, b"same bytes"))
    await asyncio.wait_for(reached.wait(), 5)  # the blob is matched, the row not yet written
    purging = asyncio.ensure_future(homeserver.services.media_retention.purge(local_days=5))
    await asyncio.sleep(0.3)
    assert not purging.done()  # waiting for the blob's lock
    assert len(blob_files(homeserver)) == 1
    go.set()
    status, body = await asyncio.wait_for(uploading, 5)
    report = await asyncio.wait_for(purging, 5)
    assert status == 200
    assert (report.local_media, report.blobs_deleted) == (1, 0)
    response = await alice.get(f"{DOWNLOAD}/{media_path(str(body['content_uri']))}")
    assert response.status == 200 and response.body == b"same bytes"
    assert len(homeserver.services.media.blobs.locks) == 0  # no lock outlives its use


async def test_failed_upload_leaves_a_shared_blob_alone(
        homeserver: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = await logged_in_user(homeserver, "alice")
    kept = media_path(str((await upload(alice, b"shared"))[1]["content_uri"]))

    async def broken(self: MediaStore, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(MediaStore, "add_uploaded", broken)
    assert (await upload(alice, b"shared"))[0] == 500
    assert (await upload(alice, b"alone"))[0] == 500
    assert len(blob_files(homeserver)) == 1  # "alone" released, "shared" still named
    monkeypatch.undo()
    assert (await alice.get(f"{DOWNLOAD}/{kept}")).body == b"shared"
