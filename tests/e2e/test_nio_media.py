"""matrix-nio uploads a PNG, downloads it byte-identical, asks for scale and crop thumbnails,
and sends it to a room as an m.image that another nio client can fetch."""

from __future__ import annotations

import io
from pathlib import Path

import nio
from PIL import Image

from harness import RunningServer


def photo_png() -> bytes:
    image = Image.new("RGB", (800, 600))
    for x in range(0, 800, 40):  # stripes, so a wrong crop or scale would show in the pixels
        for y in range(600):
            image.putpixel((x, y), (255, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def nio_client(server: RunningServer, name: str, tmp_path: Path) -> nio.AsyncClient:
    await server.services.auth.register(name, "pw")
    client = nio.AsyncClient(server.url, f"@{name}:test.local", store_path=str(tmp_path))
    assert isinstance(await client.login("pw"), nio.LoginResponse)
    return client


async def test_nio_upload_download_and_thumbnails(homeserver: RunningServer,
                                                  tmp_path: Path) -> None:
    data = photo_png()
    alice = await nio_client(homeserver, "alice", tmp_path)
    bob = await nio_client(homeserver, "bob", tmp_path)
    try:
        uploaded, _ = await alice.upload(io.BytesIO(data), content_type="image/png",
                                         filename="stripes.png", filesize=len(data))
        assert isinstance(uploaded, nio.UploadResponse), uploaded
        uri = uploaded.content_uri
        assert uri.startswith("mxc://test.local/")

        downloaded = await bob.download(mxc=uri)
        assert isinstance(downloaded, nio.DownloadResponse), downloaded
        assert downloaded.body == data
        assert downloaded.content_type == "image/png"
        assert downloaded.filename == "stripes.png"

        server_name, media_id = uri.removeprefix("mxc://").split("/")
        for width, height, method, expected in [
            (320, 240, nio.ResizingMethod.scale, (320, 240)),
            (640, 480, nio.ResizingMethod.scale, (640, 480)),
            (96, 96, nio.ResizingMethod.crop, (96, 96)),
            (32, 32, nio.ResizingMethod.crop, (32, 32)),
        ]:
            thumb = await bob.thumbnail(server_name, media_id, width, height, method)
            assert isinstance(thumb, nio.ThumbnailResponse), thumb
            assert thumb.content_type == "image/png"
            with Image.open(io.BytesIO(thumb.body)) as image:
                assert image.size == expected, (width, height, method)

        room = await alice.room_create(invite=["@bob:test.local"])
        assert isinstance(room, nio.RoomCreateResponse), room
        await alice.sync(timeout=0)
        sent = await alice.room_send(room.room_id, "m.room.message", {
            "msgtype": "m.image", "body": "stripes.png", "url": uri,
            "info": {"mimetype": "image/png", "size": len(data), "w": 800, "h": 600},
        })
        assert isinstance(sent, nio.RoomSendResponse), sent
        assert isinstance(await bob.join(room.room_id), nio.JoinResponse)
        messages = await bob.room_messages(room.room_id, start="", limit=10)
        images = [e for e in messages.chunk if isinstance(e, nio.RoomMessageImage)]
        assert images and images[0].url == uri
        again = await bob.download(mxc=images[0].url)
        assert isinstance(again, nio.DownloadResponse) and again.body == data
    finally:
        await alice.close()
        await bob.close()
