"""URL previews (client-server API, ``GET /media/preview_url``): fetch a page for a client,
read its OpenGraph data, keep its image as local media, and cache the answer.

The server fetches what any user names, so every fetch goes through ``SafeFetcher``: private,
loopback and link-local addresses are refused by default, after DNS resolution, and the
configured host patterns too, on every redirect and for the page's image as well as the page.
Answers are cached per URL so a link posted in a busy room is fetched once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from myelin.config import UrlPreviewConfig
from myelin.errors import MatrixError, forbidden, invalid_param, unrecognized
from myelin.services.media.image_info import ThumbnailError, probe
from myelin.services.media.opengraph import decode_html, parse_opengraph
from myelin.services.media.repository import MediaRepository
from myelin.services.media.safe_fetch import (
    DEFAULT_DENIED_RANGES,
    FetchError,
    FetchResult,
    SafeFetcher,
    UrlBlocked,
    host_matches,
)
from myelin.services.single_flight import SingleFlight
from myelin.storage.stores.media import MediaStore

log = logging.getLogger("myelin.media")

MAX_URL_LENGTH = 2048
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def make_fetcher(config: UrlPreviewConfig) -> SafeFetcher:
    """The fetcher enforces every rule itself, so redirects and image fetches obey them too."""
    return SafeFetcher(
        denied_ranges=config.denied_ip_ranges or DEFAULT_DENIED_RANGES,
        allowed_ranges=config.allowed_ip_ranges,
        denied_hosts=config.denied_hosts,
        max_bytes=config.max_page_bytes,
        timeout_s=config.timeout_s,
    )


class UrlPreviewService:
    def __init__(self, store: MediaStore, media: MediaRepository, config: UrlPreviewConfig,
                 fetcher: SafeFetcher, *, max_image_pixels: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._media = media
        self._config = config
        self._fetcher = fetcher
        self._max_pixels = max_image_pixels
        self._clock = clock
        self._flights = SingleFlight()  # one fetch per URL at a time

    async def close(self) -> None:
        await self._fetcher.close()

    async def preview(self, url: str) -> dict[str, Any]:
        if not self._config.enabled:
            raise unrecognized("URL previews are disabled on this server")
        self._check_url(url)
        now = int(self._clock() * 1000)
        cached = await self._store.cached_preview(url, now)
        if cached is not None:
            return cached
        return await self._flights.run(url, lambda: self._build_and_cache(url, now))

    async def _build_and_cache(self, url: str, now: int) -> dict[str, Any]:
        og = await self._build(url)
        await self._store.cache_preview(url, og, now, now + self._config.cache_s * 1000)
        return og

    def _check_url(self, url: str) -> None:
        if len(url) > MAX_URL_LENGTH:
            raise invalid_param("URL is too long")
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise invalid_param("Not a valid URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise invalid_param("Only http and https URLs can be previewed")
        # The fetcher checks again on every hop; this answers a denied URL without fetching.
        if host_matches(host, self._config.denied_hosts):
            raise forbidden("URL blocked by this server's preview rules")

    async def _fetch(self, url: str) -> FetchResult:
        try:
            return await self._fetcher.fetch(url)
        except UrlBlocked:
            raise forbidden("URL blocked: its address is not allowed for previews") from None
        except FetchError as e:
            raise MatrixError(502, "M_UNKNOWN", f"Could not fetch the URL: {e}") from None

    async def _build(self, url: str) -> dict[str, Any]:
        page = await self._fetch(url)
        if page.content_type.startswith("image/"):
            image = await self._keep_image(page, url)
            if image is None:
                return {}
            return {"og:title": urlsplit(page.url).path.rsplit("/", 1)[-1] or None, **image}
        if page.content_type not in _HTML_TYPES:
            return {}
        og: dict[str, Any] = dict(parse_opengraph(decode_html(page.body, page.charset), page.url))
        image_url = og.pop("og:image", None)
        for key in ("og:image:width", "og:image:height", "og:image:type"):
            og.pop(key, None)  # describe the image we actually kept, not the page's claims
        if isinstance(image_url, str):
            try:
                fetched = await self._fetcher.fetch(image_url, accept="image/*")
            except (UrlBlocked, FetchError) as e:
                log.debug("preview image %s of %s skipped: %s", image_url, url, e)
            else:
                og.update(await self._keep_image(fetched, image_url) or {})
        return {k: v for k, v in og.items() if v is not None}

    async def _keep_image(self, fetched: FetchResult, url: str) -> dict[str, Any] | None:
        """Store a fetched image as media; None if it is not an image we can decode."""
        blobs = self._media.blobs
        staged = blobs.staging_file()
        try:
            await asyncio.to_thread(staged.write_bytes, fetched.body)
            try:
                info = await asyncio.to_thread(probe, staged, max_pixels=self._max_pixels)
            except ThumbnailError:
                return None
        finally:
            staged.unlink(missing_ok=True)
        name = urlsplit(url).path.rsplit("/", 1)[-1] or None
        mxc, _ = await self._media.store_fetched(fetched.body, info.content_type, name)
        return {"og:image": mxc, "og:image:type": info.content_type,
                "og:image:width": info.width, "og:image:height": info.height,
                "matrix:image:size": len(fetched.body)}
