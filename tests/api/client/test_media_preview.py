"""URL previews: OpenGraph through a real fetch, the image kept as media, the cache, and the
SSRF guards (denied ranges after DNS resolution and on redirects)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from PIL import Image

from harness import RunningServer, logged_in_user
from media_helpers import DOWNLOAD, media_path

PREVIEW = "/_matrix/client/v1/media/preview_url"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


class Site:
    """A small web site on 127.0.0.1 that counts how often each page is fetched."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.port = 0
        self.image = png(64, 48)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def app(self) -> web.Application:
        app = web.Application()

        async def page(request: web.Request) -> web.Response:
            self.hits[request.path] = self.hits.get(request.path, 0) + 1
            return web.Response(content_type="text/html", text="""<html><head>
<title>Fallback title</title>
<meta property="og:title" content="Myelin news">
<meta property="og:description" content="Rooms everywhere">
<meta property="og:image" content="/logo.png">
<meta property="og:image:width" content="9999">
</head><body><p>Body text</p></body></html>""")

        async def plain(request: web.Request) -> web.Response:
            return web.Response(content_type="text/html", text="""<html><head>
<title>Only a title</title><meta name="description" content="Described"></head>
<body><img src="http://10.0.0.1/internal.png"></body></html>""")

        async def logo(request: web.Request) -> web.Response:
            self.hits[request.path] = self.hits.get(request.path, 0) + 1
            return web.Response(body=self.image, content_type="image/png")

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound(request.query["to"])

        async def with_image(request: web.Request) -> web.Response:
            self.hits[request.path] = self.hits.get(request.path, 0) + 1
            return web.Response(content_type="text/html", text=f"""<html><head>
<meta property="og:title" content="Has an image">
<meta property="og:image" content="{request.query['img']}"></head></html>""")

        async def blob(request: web.Request) -> web.Response:
            return web.Response(body=b"\x00" * 10, content_type="application/octet-stream")

        app.router.add_get("/page", page)
        app.router.add_get("/plain", plain)
        app.router.add_get("/logo.png", logo)
        app.router.add_get("/redirect", redirect)
        app.router.add_get("/blob", blob)
        app.router.add_get("/with_image", with_image)
        return app


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site()
    runner = web.AppRunner(site.app())
    await runner.setup()
    tcp = web.TCPSite(runner, "0.0.0.0", 0)
    await tcp.start()
    site.port = runner.addresses[0][1]
    yield site
    await runner.cleanup()


async def preview(client: Any, url: str) -> Any:
    return await client.get(f"{PREVIEW}?url={quote(url, safe='')}")


ALLOW_LOCAL = {"url_preview": {"allowed_ip_ranges": ["127.0.0.1/32"]}}


async def test_preview_reads_opengraph_and_keeps_the_image(start_server, site: Site) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(**ALLOW_LOCAL)
    alice = await logged_in_user(server, "alice")
    response = await preview(alice, site.url("/page"))
    assert response.status == 200, response
    og = response.json
    assert og["og:title"] == "Myelin news"
    assert og["og:description"] == "Rooms everywhere"
    assert og["og:image"].startswith("mxc://test.local/")
    assert og["og:image:type"] == "image/png"
    assert (og["og:image:width"], og["og:image:height"]) == (64, 48)  # not the page's claim
    assert og["matrix:image:size"] == len(site.image)
    image = await alice.get(f"{DOWNLOAD}/{media_path(og['og:image'])}")
    assert image.body == site.image
    # Cached: the page is fetched once.
    again = await preview(alice, site.url("/page"))
    assert again.json == og
    assert site.hits["/page"] == 1


async def test_fallbacks_and_a_denied_image_is_dropped(start_server, site: Site) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(**ALLOW_LOCAL)
    alice = await logged_in_user(server, "alice")
    response = await preview(alice, site.url("/plain"))
    assert response.status == 200
    assert response.json == {"og:title": "Only a title", "og:description": "Described"}


async def test_image_url_previews_as_an_image(start_server, site: Site) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(**ALLOW_LOCAL)
    alice = await logged_in_user(server, "alice")
    response = await preview(alice, site.url("/logo.png"))
    assert response.status == 200
    assert response.json["og:image"].startswith("mxc://")
    assert response.json["matrix:image:size"] == len(site.image)
    assert (await preview(alice, site.url("/blob"))).json == {}


async def test_loopback_is_denied_by_default(homeserver: RunningServer, site: Site) -> None:
    alice = await logged_in_user(homeserver, "alice")
    for url in (site.url("/page"), site.url("/page", host="localhost"),
                site.url("/page", host="[::1]"), "http://169.254.169.254/latest/meta-data",
                "http://10.1.2.3/"):
        response = await preview(alice, url)
        assert response.status == 403, url
        assert response.json["errcode"] == "M_FORBIDDEN"
    assert site.hits == {}


async def test_redirects_are_checked_too(start_server, site: Site) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(**ALLOW_LOCAL)
    alice = await logged_in_user(server, "alice")
    target = site.url("/page", host="127.0.0.2")  # loopback, but not in the allowed range
    response = await preview(alice, site.url("/redirect?to=" + quote(target, safe="")))
    assert response.status == 403
    assert site.hits == {}
    allowed = await start_server(url_preview={"allowed_ip_ranges": ["127.0.0.0/8"]})
    bob = await logged_in_user(allowed, "bob")
    response = await preview(bob, site.url("/redirect?to=" + quote(target, safe="")))
    assert response.status == 200
    assert response.json["og:title"] == "Myelin news"


async def test_denied_ranges_and_hosts_are_configurable(start_server, site: Site) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(url_preview={"denied_ip_ranges": ["192.0.2.0/24"],
                                             "denied_hosts": ["*.blocked.test"]})
    alice = await logged_in_user(server, "alice")
    # With a custom deny list, loopback is no longer denied.
    assert (await preview(alice, site.url("/page"))).status == 200
    response = await preview(alice, "http://www.blocked.test/")
    assert response.status == 403
    response = await preview(alice, "http://192.0.2.7/")
    assert response.status == 403


# Loopback allowed by address, so only the host pattern can refuse "localhost".
LOCALHOST_DENIED = {"url_preview": {"allowed_ip_ranges": ["127.0.0.0/8", "::1/128"],
                                    "denied_hosts": ["LOCAL*"]}}


async def test_denied_hosts_are_checked_on_every_redirect(start_server, site: Site) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(**LOCALHOST_DENIED)
    alice = await logged_in_user(server, "alice")
    direct = await preview(alice, site.url("/page", host="localhost"))
    assert direct.status == 403 and direct.json["errcode"] == "M_FORBIDDEN"
    for host in ("localhost", "LocalHost.", "localhost.localdomain"):
        target = site.url("/page", host=host)
        response = await preview(alice, site.url("/redirect?to=" + quote(target, safe="")))
        assert (response.status, response.json["errcode"]) == (403, "M_FORBIDDEN"), host
    assert "/page" not in site.hits  # the denied page was never fetched
    # Without the pattern the same redirect is followed: the pattern is what refused it.
    open_server = await start_server(url_preview={"allowed_ip_ranges": ["127.0.0.0/8",
                                                                        "::1/128"]})
    bob = await logged_in_user(open_server, "bob")
    target = site.url("/page", host="localhost")
    response = await preview(bob, site.url("/redirect?to=" + quote(target, safe="")))
    assert response.status == 200 and response.json["og:title"] == "Myelin news"


async def test_denied_hosts_apply_to_the_preview_image(start_server, site: Site) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(**LOCALHOST_DENIED)
    alice = await logged_in_user(server, "alice")
    denied_image = site.url("/logo.png", host="localhost")
    redirected_image = site.url("/redirect?to=" + quote(denied_image, safe=""))
    for image in (denied_image, redirected_image):
        response = await preview(alice, site.url("/with_image?img=" + quote(image, safe="")))
        assert response.status == 200, response
        assert response.json == {"og:title": "Has an image"}  # the image was dropped
    assert "/logo.png" not in site.hits
    allowed = await preview(alice, site.url("/with_image?img=" + quote(
        site.url("/logo.png"), safe="")))
    assert allowed.json["og:image"].startswith("mxc://")
    assert site.hits["/logo.png"] == 1


async def test_bad_urls_and_unreachable_pages(start_server, site: Site) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(**ALLOW_LOCAL)
    alice = await logged_in_user(server, "alice")
    for url in ("ftp://example.org/", "not a url", "http://", "javascript:alert(1)"):
        response = await preview(alice, url)
        assert response.status == 400, url
        assert response.json["errcode"] == "M_INVALID_PARAM"
    assert (await alice.get(PREVIEW)).json["errcode"] == "M_MISSING_PARAM"
    response = await preview(alice, site.url("/missing"))
    assert response.status == 502
    assert response.json["errcode"] == "M_UNKNOWN"


async def test_previews_can_be_disabled(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(url_preview={"enabled": False})
    alice = await logged_in_user(server, "alice")
    response = await preview(alice, "http://example.org/")
    assert response.status == 404
    assert response.json["errcode"] == "M_UNRECOGNIZED"
    assert (await homeserver_legacy(alice)).status == 404


async def homeserver_legacy(client: Any) -> Any:
    return await client.get("/_matrix/media/v3/preview_url?url=http%3A%2F%2Fexample.org%2F")
