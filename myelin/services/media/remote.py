"""Media of other servers (server-server API, "Content Repository"): fetched once through
``/_matrix/federation/v1/media/download`` (falling back to the deprecated
``/_matrix/media/v3/download`` with ``allow_remote=false`` on ``404 M_UNRECOGNIZED``, as the
spec requires), cached here as a blob like local media, and served from the cache afterwards.
Thumbnails are asked from ``/_matrix/federation/v1/media/thumbnail``, so showing an image
does not mean downloading all of it; ``ThumbnailService`` caches them.

The second part of a multipart answer may be a ``Location`` header instead of the bytes. That
URL is the other server's choice, so it is fetched like a URL a user names for a preview:
through ``SafeFetcher`` (denied address ranges checked after DNS resolution, on every redirect
hop), under the same size cap as the bytes would have been.

Also the serving side: the multipart/mixed answer other servers get for our media.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

import orjson
from aiohttp import web

from myelin.errors import MatrixError, not_found
from myelin.services.federation.client import (
    FederationClient,
    FederationError,
    RawResponse,
    ResponseTooLarge,
)
from myelin.services.media.repository import (
    DEFAULT_CONTENT_TYPE,
    not_yet_uploaded,
    too_large_remote,
)
from myelin.services.media.safe_fetch import BodyTooLarge, FetchError, SafeFetcher, UrlBlocked
from myelin.services.media.thumbnails import ThumbnailRequest, cannot_thumbnail
from myelin.services.single_flight import SingleFlight

log = logging.getLogger("myelin.media")

Store = Callable[[str, str, bytes, str, str | None], Awaitable[None]]

# Room for the multipart framing and the JSON part around the media bytes.
_MULTIPART_OVERHEAD = 64 * 1024
REDIRECT_TIMEOUT_S = 60.0

@dataclass(frozen=True, slots=True)
class _MediaPart:
    """The second part of a federation media answer: the bytes, or where to get them."""

    data: bytes
    content_type: str
    filename: str | None
    location: str | None = None


class RemoteMediaFetcher:
    """Asks other servers for their media and thumbnails; concurrent asks for the same thing
    share one request.

    ``redirect_fetcher`` follows ``Location`` parts. By default it refuses the built-in denied
    ranges (private, loopback, link-local...), whatever the federation settings say: a peer
    allowed to be on a private network is no reason to let it point us at others there.
    """

    def __init__(self, client: FederationClient, max_bytes: int, *,
                 redirect_fetcher: SafeFetcher | None = None) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._redirects = redirect_fetcher or SafeFetcher(
            max_bytes=max_bytes, timeout_s=REDIRECT_TIMEOUT_S, user_agent="Myelin")
        self._flights = SingleFlight()

    async def close(self) -> None:
        """Close the redirect fetcher's connections (a later fetch opens new ones)."""
        await self._redirects.close()

    async def fetch(self, server_name: str, media_id: str,
                    timeout_ms: int) -> tuple[bytes, str, str | None]:
        """(bytes, content type, file name) of a remote media."""
        return await self._flights.run(("download", server_name, media_id),
                                lambda: self._download(server_name, media_id, timeout_ms))

    async def fetch_thumbnail(self, server_name: str, media_id: str, request: ThumbnailRequest,
                              timeout_ms: int) -> tuple[bytes, str] | None:
        """(bytes, claimed content type) of a thumbnail the media's server made, or ``None``
        if that server has no federation thumbnail endpoint (``404 M_UNRECOGNIZED``): the
        caller then falls back to fetching the original and thumbnailing it itself, which
        ``fetch`` already knows how to do for servers older than Matrix 1.11."""
        key = ("thumbnail", server_name, media_id, request.width, request.height,
               request.method, request.animated)
        return await self._flights.run(key, lambda: self._thumbnail(server_name, media_id, request,
                                                             timeout_ms))

    async def _get(self, server_name: str, path: str, query: Mapping[str, str], timeout_ms: int,
                   *, signed: bool = True, max_bytes: int) -> RawResponse:
        timeout_s = min(max(timeout_ms, 1000), 60_000) / 1000 + 10
        try:
            return await self._client.request_raw(server_name, "GET", path, query=query,
                                                  signed=signed, timeout_s=timeout_s,
                                                  max_bytes=max_bytes)
        except ResponseTooLarge:  # matched by type: its message is free to change
            raise too_large_remote() from None
        except FederationError as e:
            raise MatrixError(502, "M_UNKNOWN", f"Could not fetch the media from "
                              f"{server_name}: {e}") from None

    async def _download(self, server_name: str, media_id: str,
                        timeout_ms: int) -> tuple[bytes, str, str | None]:
        query = {"timeout_ms": str(timeout_ms)}
        response = await self._get(
            server_name, f"/_matrix/federation/v1/media/download/{quote(media_id)}", query,
            timeout_ms, max_bytes=self._max_bytes + _MULTIPART_OVERHEAD)
        if response.status == 404 and _errcode(response.body) == "M_UNRECOGNIZED":
            response = await self._get(
                server_name, f"/_matrix/media/v3/download/{quote(server_name)}/"
                f"{quote(media_id)}", {"allow_remote": "false"}, timeout_ms, signed=False,
                max_bytes=self._max_bytes)
            if response.status == 200:
                return (response.body, response.headers.get("Content-Type", DEFAULT_CONTENT_TYPE),
                        _filename(response.headers.get("Content-Disposition")))
        _check_status(server_name, response)
        part = _parse_multipart(response.headers.get("Content-Type", ""), response.body,
                                self._max_bytes)
        if part.location is not None:
            return await self._follow(part.location)
        return part.data, part.content_type, part.filename

    async def _thumbnail(self, server_name: str, media_id: str, request: ThumbnailRequest,
                         timeout_ms: int) -> tuple[bytes, str] | None:
        query = {"width": str(request.width), "height": str(request.height),
                 "method": request.method, "animated": "true" if request.animated else "false",
                 "timeout_ms": str(timeout_ms)}
        response = await self._get(
            server_name, f"/_matrix/federation/v1/media/thumbnail/{quote(media_id)}", query,
            timeout_ms, max_bytes=self._max_bytes + _MULTIPART_OVERHEAD)
        if response.status == 404 and _errcode(response.body) == "M_UNRECOGNIZED":
            return None
        if response.status == 400:  # "the server cannot thumbnail the content"
            raise cannot_thumbnail()
        if response.status == 413:  # too large for it to thumbnail: remote, so 502 here
            raise too_large_remote()
        _check_status(server_name, response)
        part = _parse_multipart(response.headers.get("Content-Type", ""), response.body,
                                self._max_bytes)
        if part.location is not None:
            data, content_type, _ = await self._follow(part.location)
            return data, content_type
        return part.data, part.content_type

    async def _follow(self, location: str) -> tuple[bytes, str, str | None]:
        """GET the URL a ``Location`` part names; the content type and file name come from
        that answer ("The URL at Location SHOULD have appropriate Content-Type and
        Content-Disposition headers"). Only the bytes are kept, never the URL, as the spec
        asks: the other server may limit how long it is valid."""
        try:
            result = await self._redirects.fetch(location, accept="*/*")
        except BodyTooLarge:
            raise too_large_remote() from None
        except UrlBlocked:
            raise MatrixError(502, "M_UNKNOWN", "The remote server redirected the media to an "
                              "address this server does not fetch from") from None
        except FetchError as e:
            raise MatrixError(502, "M_UNKNOWN",
                              f"Could not fetch the redirected media: {e}") from None
        content_type = result.content_type or DEFAULT_CONTENT_TYPE
        if result.charset:
            content_type += f"; charset={result.charset}"
        return result.body, content_type, _filename(result.content_disposition)


def _check_status(server_name: str, response: RawResponse) -> None:
    """A non-200 answer as the error our client gets (a 502 unless it says something)."""
    if response.status == 200:
        return
    if response.status == 404:
        raise not_found("Unknown media")
    if response.status == 504:
        raise not_yet_uploaded()
    if response.status == 502 and _errcode(response.body) == "M_TOO_LARGE":
        raise too_large_remote()
    raise MatrixError(502, "M_UNKNOWN", f"{server_name} answered HTTP {response.status}")


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


def _parse_multipart(content_type: str, body: bytes, max_bytes: int) -> _MediaPart:
    """The media part of a federation download or thumbnail: multipart/mixed with a JSON part
    first, then either the bytes or a ``Location`` header (server-server API, "Content
    Repository", GET /media/download: "The second part is either...")."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise MatrixError(502, "M_UNKNOWN", "The remote server's answer is not multipart")
    parts = list(message.iter_parts())
    if len(parts) != 2:
        raise MatrixError(502, "M_UNKNOWN", "The remote server's answer has no media part")
    media = parts[1]
    location = media.get("Location")
    if location:
        return _MediaPart(b"", DEFAULT_CONTENT_TYPE, None, location=str(location).strip())
    data = media.get_payload(decode=True) or b""
    if len(data) > max_bytes:
        raise too_large_remote()
    return _MediaPart(bytes(data), media.get("Content-Type", DEFAULT_CONTENT_TYPE),
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
