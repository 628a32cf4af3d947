"""Media of other servers (server-server API, "Content Repository"): fetched once through
``/_matrix/federation/v1/media/download`` (falling back to the deprecated
``/_matrix/media/v3/download`` with ``allow_remote=false`` on ``404 M_UNRECOGNIZED``, as the
spec requires), cached here as a blob like local media, and served from the cache afterwards.
Thumbnails of remote media are made here from the cached original.

Also the serving side: the multipart/mixed answer other servers get for our media.
"""

from __future__ import annotations

import asyncio
import email.message
import email.parser
import email.policy
import logging
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import orjson
from aiohttp import web

from myelin.errors import MatrixError, not_found
from myelin.services.federation.client import (
    FederationClient,
    FederationError,
    ResponseTooLarge,
)
from myelin.services.media.repository import DEFAULT_CONTENT_TYPE

log = logging.getLogger("myelin.media")

Store = Callable[[str, str, bytes, str, str | None], Awaitable[None]]


def too_large_remote() -> MatrixError:
    return MatrixError(502, "M_TOO_LARGE", "The remote content is too large to fetch")


class RemoteMediaFetcher:
    def __init__(self, client: FederationClient, max_bytes: int) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._in_flight: dict[tuple[str, str], asyncio.Future[tuple[bytes, str, str | None]]] = {}

    async def fetch(self, server_name: str, media_id: str,
                    timeout_ms: int) -> tuple[bytes, str, str | None]:
        """(bytes, content type, file name) of a remote media; concurrent asks share one
        download."""
        key = (server_name, media_id)
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[tuple[bytes, str, str | None]] = \
            asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._download(server_name, media_id, timeout_ms)
            future.set_result(result)
            return result
        except BaseException as e:
            future.set_exception(e)
            future.exception()
            raise
        finally:
            del self._in_flight[key]

    async def _download(self, server_name: str, media_id: str,
                        timeout_ms: int) -> tuple[bytes, str, str | None]:
        timeout_s = min(max(timeout_ms, 1000), 60_000) / 1000 + 10
        try:
            response = await self._client.request_raw(
                server_name, "GET", f"/_matrix/federation/v1/media/download/{quote(media_id)}",
                query={"timeout_ms": str(timeout_ms)}, timeout_s=timeout_s,
                max_bytes=self._max_bytes + 64 * 1024)
            if response.status == 404 and _errcode(response.body) == "M_UNRECOGNIZED":
                response = await self._client.request_raw(
                    server_name, "GET", f"/_matrix/media/v3/download/{quote(server_name)}/"
                    f"{quote(media_id)}", query={"allow_remote": "false"}, signed=False,
                    timeout_s=timeout_s, max_bytes=self._max_bytes)
                if response.status == 200:
                    return (response.body,
                            response.headers.get("Content-Type", DEFAULT_CONTENT_TYPE),
                            _filename(response.headers.get("Content-Disposition")))
        except ResponseTooLarge:  # matched by type: its message is free to change
            raise too_large_remote() from None
        except FederationError as e:
            raise MatrixError(502, "M_UNKNOWN", f"Could not fetch the media from "
                              f"{server_name}: {e}") from None
        if response.status == 404:
            raise not_found("Unknown media")
        if response.status == 504:
            raise MatrixError(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")
        if response.status != 200:
            raise MatrixError(502, "M_UNKNOWN", f"{server_name} answered HTTP {response.status}")
        return _parse_multipart(response.headers.get("Content-Type", ""), response.body,
                                self._max_bytes)


def _errcode(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data.get("errcode") if isinstance(data, dict) else None


def _filename(disposition: str | None) -> str | None:
    if not disposition:
        return None
    message = email.message.Message()
    message["Content-Disposition"] = disposition
    name = message.get_filename()
    return str(name) if name else None


def _parse_multipart(content_type: str, body: bytes,
                     max_bytes: int) -> tuple[bytes, str, str | None]:
    """The media part of a federation download: multipart/mixed with a JSON part first."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise MatrixError(502, "M_UNKNOWN", "The remote server's answer is not multipart")
    parts = list(message.iter_parts())
    if len(parts) != 2:
        raise MatrixError(502, "M_UNKNOWN", "The remote server's answer has no media part")
    media = parts[1]
    if media.get("Location"):
        raise MatrixError(502, "M_UNKNOWN", "Redirected remote media is not supported yet")
    data = media.get_payload(decode=True) or b""
    if len(data) > max_bytes:
        raise too_large_remote()
    return (bytes(data), media.get("Content-Type", DEFAULT_CONTENT_TYPE),
            _filename(media.get("Content-Disposition")))


async def multipart_media(data: bytes, content_type: str, disposition: str) -> web.Response:
    """Our media as other servers get it: a JSON part ({}), then the bytes."""
    boundary = uuid.uuid4().hex
    body = b"".join([
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n".encode(),
        f"--{boundary}\r\nContent-Type: {content_type}\r\n"
        f"Content-Disposition: {disposition}\r\n\r\n".encode(),
        data, f"\r\n--{boundary}--\r\n".encode(),
    ])
    return web.Response(body=body, headers={
        "Content-Type": f"multipart/mixed; boundary={boundary}"})
