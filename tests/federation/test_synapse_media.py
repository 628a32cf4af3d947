"""Media over federation with Synapse, both ways: downloads and thumbnails of the other
server's uploads through the authenticated endpoints."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from federation_fixtures import FederatingFactory, Peer
from harness import logged_in_user
from media_helpers import upload_ok

pytestmark = pytest.mark.federation


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 160, 90)).save(out, "PNG")
    return out.getvalue()


async def test_media_both_ways(federating_server: FederatingFactory,
                               peer: Peer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await peer.user("sue8")
    # Synapse's upload, fetched by Myelin.
    picture = png(640, 480)
    response = await sue.request("POST", "/_matrix/media/v3/upload?filename=green.png",
                                 data=picture, headers={"Content-Type": "image/png"})
    assert response.status == 200, response
    ref = response.json["content_uri"].removeprefix("mxc://")
    download = await alice.get(f"/_matrix/client/v1/media/download/{ref}")
    assert download.status == 200, download
    assert download.body == picture
    assert download.headers["Content-Type"] == "image/png"
    thumb = await alice.get(f"/_matrix/client/v1/media/thumbnail/{ref}"
                            "?width=96&height=96&method=crop")
    assert thumb.status == 200, thumb
    with Image.open(io.BytesIO(thumb.body)) as image:
        assert image.size == (96, 96)
    # Myelin's upload, fetched by Synapse.
    ours = png(300, 200)
    ref = await upload_ok(alice, ours, "image/png", "mine.png")
    download = await sue.get(f"/_matrix/client/v1/media/download/{ref}")
    assert download.status == 200, (download, peer.log_tail(20))
    assert download.body == ours
    thumb = await sue.get(f"/_matrix/client/v1/media/thumbnail/{ref}"
                          "?width=32&height=32&method=crop")
    assert thumb.status == 200, thumb
    missing = await sue.get(f"/_matrix/client/v1/media/download/{myelin.server_name}/nope")
    assert missing.status == 404
