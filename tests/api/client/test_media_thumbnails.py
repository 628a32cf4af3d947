"""Thumbnails over HTTP: sizes and methods, formats, animation, made-at-upload sizes, the cache
cap, and refusals (broken images, decompression bombs, non-images)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image

from harness import Client, RunningServer, logged_in_user
from media_helpers import THUMBNAIL, upload_ok


def image_bytes(width: int, height: int, fmt: str = "PNG", **save: Any) -> bytes:
    out = io.BytesIO()
    mode = "RGB" if fmt == "JPEG" else "RGBA"
    Image.new(mode, (width, height), (10, 120, 200)).save(out, fmt, **save)
    return out.getvalue()


def animated_gif(width: int, height: int, frames: int = 3) -> bytes:
    out = io.BytesIO()
    images = [Image.new("RGB", (width, height), (i * 80, 40, 200 - i * 60))
              for i in range(frames)]
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    return out.getvalue()


async def thumbnail(client: Client, ref: str, width: int, height: int, method: str = "scale",
                    **extra: str) -> Any:
    query = f"width={width}&height={height}&method={method}"
    query += "".join(f"&{k}={v}" for k, v in extra.items())
    return await client.get(f"{THUMBNAIL}/{ref}?{query}")


def size_of(body: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(body)) as im:
        return im.size


async def settle(server: RunningServer) -> None:
    """Wait for the thumbnails made after an upload."""
    await server.services.media.close()


async def test_crop_and_scale_give_the_requested_sizes(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = await upload_ok(alice, image_bytes(1000, 800), "image/png")
    for width, height, method, expected in [
        (32, 32, "crop", (32, 32)), (96, 96, "crop", (96, 96)),
        (320, 240, "scale", (300, 240)), (640, 480, "scale", (600, 480)),
        (50, 40, "crop", (50, 40)),  # not configured: made for this request
        (2000, 2000, "scale", (1000, 800)),  # never upscaled: the original is served
    ]:
        response = await thumbnail(alice, ref, width, height, method)
        assert response.status == 200, (width, height, method, response)
        assert response.headers["Content-Type"] == "image/png"
        assert size_of(response.body) == expected, (width, height, method)
        assert response.headers["Content-Disposition"] == 'inline; filename="thumbnail.png"'
        assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


async def test_a_bigger_configured_size_answers_a_smaller_request(
        homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = await upload_ok(alice, image_bytes(1000, 800), "image/png")
    response = await thumbnail(alice, ref, 100, 70, "scale")
    width, height = size_of(response.body)
    assert width >= 100 or height >= 70
    assert (width, height) == (300, 240)  # the 320x240 scale thumbnail, never smaller


async def test_configured_sizes_are_made_at_upload(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = await upload_ok(alice, image_bytes(1000, 800), "image/png")
    await settle(homeserver)
    _, media_id = ref.split("/")
    stored = await homeserver.services.db.fetch(
        "SELECT width, height, method FROM media_thumbnails WHERE media_id = $1", media_id)
    assert sorted((r["width"], r["height"], r["method"]) for r in stored) == sorted([
        (32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"),
        (800, 600, "scale")])


async def test_jpeg_stays_jpeg(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = await upload_ok(alice, image_bytes(800, 600, "JPEG"), "image/jpeg")
    response = await thumbnail(alice, ref, 96, 96, "crop")
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Content-Disposition"] == 'inline; filename="thumbnail.jpg"'
    assert size_of(response.body) == (96, 96)


async def test_small_original_is_returned_as_is(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    original = image_bytes(20, 10)
    ref = await upload_ok(alice, original, "image/png")
    response = await thumbnail(alice, ref, 32, 32, "crop")
    assert response.body == original


async def test_animated_thumbnails_only_when_asked(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = await upload_ok(alice, animated_gif(400, 300), "image/gif")
    animated = await thumbnail(alice, ref, 96, 96, "crop", animated="true")
    assert animated.status == 200
    assert animated.headers["Content-Type"] == "image/webp"
    with Image.open(io.BytesIO(animated.body)) as im:
        assert im.size == (96, 96)
        assert im.n_frames == 3
    still = await thumbnail(alice, ref, 96, 96, "crop")
    assert still.headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(still.body)) as im:
        assert getattr(im, "n_frames", 1) == 1
    # A small animated original is not returned as-is unless animation was asked for.
    small = await upload_ok(alice, animated_gif(20, 20), "image/gif")
    still = await thumbnail(alice, small, 32, 32, "crop", animated="false")
    assert still.headers["Content-Type"] == "image/png"
    moving = await thumbnail(alice, small, 32, 32, "crop", animated="true")
    assert moving.headers["Content-Type"] == "image/gif"


async def test_broken_image_upload_is_kept_but_not_thumbnailed(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    broken = image_bytes(200, 200)[:150]  # truncated PNG
    ref = await upload_ok(alice, broken, "image/png")
    assert (await alice.get(f"/_matrix/client/v1/media/download/{ref}")).body == broken
    response = await thumbnail(alice, ref, 96, 96, "crop")
    assert response.status == 400
    assert response.json["errcode"] == "M_UNKNOWN"
    text = await upload_ok(alice, b"just words", "text/plain")
    response = await thumbnail(alice, text, 96, 96)
    assert response.status == 400


async def test_decompression_bombs_are_refused(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"max_image_pixels": 10_000})
    alice = await logged_in_user(server, "alice")
    ref = await upload_ok(alice, image_bytes(200, 200), "image/png")
    response = await thumbnail(alice, ref, 32, 32, "crop")
    assert response.status == 413
    assert response.json["errcode"] == "M_TOO_LARGE"


async def test_bad_thumbnail_parameters(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = await upload_ok(alice, image_bytes(100, 100), "image/png")
    for query, errcode in [("width=10", "M_MISSING_PARAM"), ("width=a&height=1", "M_INVALID_PARAM"),
                           ("width=0&height=10", "M_INVALID_PARAM"),
                           ("width=-5&height=10", "M_INVALID_PARAM"),
                           ("width=10&height=10&method=stretch", "M_INVALID_PARAM"),
                           ("width=10&height=10&animated=yes", "M_INVALID_PARAM")]:
        response = await alice.get(f"{THUMBNAIL}/{ref}?{query}")
        assert response.status == 400, query
        assert response.json["errcode"] == errcode, query
    response = await alice.get(f"{THUMBNAIL}/test.local/missing?width=10&height=10")
    assert response.status == 404


async def test_odd_sizes_are_cached_up_to_the_cap(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"max_cached_thumbnails": 1})
    alice = await logged_in_user(server, "alice")
    ref = await upload_ok(alice, image_bytes(1000, 800), "image/png")
    await settle(server)
    first = await thumbnail(alice, ref, 50, 40, "crop")
    second = await thumbnail(alice, ref, 60, 40, "crop")
    assert size_of(first.body) == (50, 40) and size_of(second.body) == (60, 40)
    count = await server.services.db.fetchval(
        "SELECT COUNT(*) FROM media_thumbnails WHERE configured = FALSE")
    assert count == 1


async def test_concurrent_requests_make_one_thumbnail(homeserver: RunningServer) -> None:
    alice = await logged_in_user(homeserver, "alice")
    ref = await upload_ok(alice, image_bytes(1000, 800), "image/png")
    await settle(homeserver)
    responses = await asyncio.gather(*[thumbnail(alice, ref, 77, 55, "crop") for _ in range(8)])
    assert {size_of(r.body) for r in responses} == {(77, 55)}
    count = await homeserver.services.db.fetchval(
        "SELECT COUNT(*) FROM media_thumbnails WHERE width = 77")
    assert count == 1


async def test_legacy_thumbnail_follows_the_freeze(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(media={"freeze_unauthenticated": False})
    alice = await logged_in_user(server, "alice")
    ref = await upload_ok(alice, image_bytes(300, 300), "image/png")
    response = await server.client.get(
        f"/_matrix/media/v3/thumbnail/{ref}?width=32&height=32&method=crop")
    assert response.status == 200
    assert size_of(response.body) == (32, 32)
    frozen = await start_server()
    bob = await logged_in_user(frozen, "bob")
    ref = await upload_ok(bob, image_bytes(300, 300), "image/png")
    response = await frozen.client.get(
        f"/_matrix/media/v3/thumbnail/{ref}?width=32&height=32&method=crop")
    assert response.status == 404
