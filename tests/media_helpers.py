"""Shared by the media tests: uploading through the API and looking at the blob store."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness import Client, RunningServer

UPLOAD = "/_matrix/media/v3/upload"
CREATE = "/_matrix/media/v1/create"
DOWNLOAD = "/_matrix/client/v1/media/download"
THUMBNAIL = "/_matrix/client/v1/media/thumbnail"


async def upload(client: Client, data: bytes, content_type: str | None = "text/plain",
                 filename: str | None = None) -> tuple[int, dict[str, Any]]:
    path = UPLOAD if filename is None else f"{UPLOAD}?filename={quote(filename)}"
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.request("POST", path, data=data, headers=headers)
    return response.status, response.json


async def upload_ok(client: Client, data: bytes, content_type: str = "text/plain",
                    filename: str | None = None) -> str:
    """Upload and return the media's ``server/mediaId`` path part."""
    status, body = await upload(client, data, content_type, filename)
    assert status == 200, body
    return media_path(body["content_uri"])


def media_path(uri: str) -> str:
    assert uri.startswith("mxc://"), uri
    return uri.removeprefix("mxc://")


def blob_files(server: RunningServer) -> list[Path]:
    """Every file in the media store, staging folder included."""
    root = server.services.config.resolve(server.services.config.media_store_path)
    return sorted(p for p in root.rglob("*") if p.is_file())
