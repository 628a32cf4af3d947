"""HTML to OpenGraph metadata for URL previews, with the standard library only.

Pages on the open web are often broken, mis-declared or hostile, and a preview is best effort:
nothing here raises for any input, it returns what it could find. When a page has no
OpenGraph tags the usual fallbacks are filled in (as Synapse does): the <title>, the meta
description or the first text of the body, and an image from itemprop or the first <img>.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

_SNIFF_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([a-zA-Z0-9_.:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Text codecs Python knows that are not ways of writing a web page (bytes-to-bytes codecs such
# as base64 or zlib are refused through their ``_is_text_encoding`` flag).
_NOT_PAGE_ENCODINGS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "charmap", "utf-7"}
)
# Browsers read these labels as windows-1252, which page authors rely on (curly quotes).
_WINDOWS_1252_ALIASES = frozenset({"latin-1", "iso8859-1", "ascii"})

_SKIP_TEXT_TAGS = frozenset(
    {"script", "style", "noscript", "header", "nav", "footer", "aside", "head", "title",
     "template", "svg", "math", "iframe", "object", "select", "button"}
)
_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6",
     "tr", "td", "th", "table", "section", "article", "main", "blockquote", "pre", "hr", "body"}
)
_URL_KEYS = frozenset({"og:url", "og:image", "og:image:url", "og:image:secure_url",
                       "og:video", "og:video:url", "og:video:secure_url",
                       "og:audio", "og:audio:url", "og:audio:secure_url"})
_IMAGE_URL_KEYS = frozenset({"og:image", "og:image:url", "og:image:secure_url"})
_INT_KEYS = frozenset({"og:image:width", "og:image:height"})
_DIGITS = re.compile(r"\d{1,9}")
_WHITESPACE = re.compile(r"\s+")
_MAX_IMG_CANDIDATES = 20


def _codec(label: str) -> str | None:
    """The Python codec for a charset label, or ``None`` if unknown or not a page encoding."""
    try:
        info = codecs.lookup(label.strip())
    except (LookupError, ValueError, TypeError):
        return None
    name = info.name
    if name in _NOT_PAGE_ENCODINGS or not getattr(info, "_is_text_encoding", True):
        return None
    return "cp1252" if name in _WINDOWS_1252_ALIASES else name


def _sniff(head: bytes) -> str | None:
    for pattern in (_META_CHARSET, _XML_ENCODING):
        match = pattern.search(head)
        if match:
            codec = _codec(match.group(1).decode("ascii", "replace"))
            if codec is not None:
                # A declaration readable as ASCII cannot truly be UTF-16/32 (WHATWG rule).
                return "utf-8" if codec.startswith(("utf-16", "utf-32")) else codec
    return None


def decode_html(body: bytes, charset: str | None) -> str:
    """Decode a page: BOM, else the header charset, else a <meta>/XML declaration, else UTF-8.

    A byte order mark is unambiguous, so it wins over a header that disagrees (the WHATWG
    encoding sniffing order); undecodable bytes become U+FFFD rather than failing the preview.
    """
    candidates: list[str | None] = []
    for bom, name in _BOMS:
        if body.startswith(bom):
            candidates.append(name)
            body = body[len(bom):]
            break
    candidates.append(_codec(charset) if charset else None)
    candidates.append(_sniff(body[:_SNIFF_BYTES]))
    candidates.append("utf-8")
    for codec in candidates:
        if codec is None:
            continue
        try:
            return body.decode(codec, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            continue
    return body.decode("utf-8", "replace")  # pragma: no cover - utf-8 always decodes


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _summarise(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, marked with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def _tiny(attrs: dict[str, str]) -> bool:
    for key in ("width", "height"):
        match = _DIGITS.match(attrs.get(key, "").strip())
        if match and int(match.group()) <= 1:
            return True
    return False


class _OpenGraphParser(HTMLParser):
    """Collects everything in one pass; interpretation happens in ``parse_opengraph``."""

    def __init__(self, text_limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.og: dict[str, str] = {}
        self.description: str | None = None
        self.itemprop_image: str | None = None
        self.base_href: str | None = None
        self.images: list[str] = []
        self.title: str | None = None
        self._title_parts: list[str] | None = None
        self._skip: dict[str, int] = {}
        self._text: list[str] = []
        self._text_len = 0
        self._text_limit = text_limit

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in reversed(attrs) if v is not None}  # first attribute wins
        if tag == "meta":
            self._meta(values)
        elif tag == "base" and self.base_href is None and values.get("href"):
            self.base_href = values["href"].strip()
        elif tag == "img":
            src = values.get("src", "").strip()
            if src and len(self.images) < _MAX_IMG_CANDIDATES and not _tiny(values):
                self.images.append(src)
        elif tag == "title" and self.title is None and self._title_parts is None:
            self._title_parts = []
        if tag in _SKIP_TEXT_TAGS:
            self._skip[tag] = self._skip.get(tag, 0) + 1
        elif tag in _BLOCK_TAGS:
            self._add_text(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title_parts is not None:
            self.title = _collapse("".join(self._title_parts))
            self._title_parts = None
        if self._skip.get(tag):
            self._skip[tag] -= 1
        elif tag in _BLOCK_TAGS:
            self._add_text(" ")

    def handle_data(self, data: str) -> None:
        if self._title_parts is not None:
            self._title_parts.append(data)
        if not any(self._skip.values()):
            self._add_text(data)

    def _add_text(self, data: str) -> None:
        # Only the start of the page is needed; whitespace does not count towards it.
        if self._text_len < self._text_limit:
            self._text.append(data)
            self._text_len += len(data.strip())

    def _meta(self, values: dict[str, str]) -> None:
        content = values.get("content")
        if content is None:
            return
        for attr in ("property", "name"):
            key = values.get(attr, "").strip().lower()
            if key.startswith("og:"):
                self.og.setdefault(key, content.strip())
            elif key == "description" and self.description is None:
                self.description = content
        if values.get("itemprop", "").strip().lower() == "image" and self.itemprop_image is None:
            self.itemprop_image = content.strip()

    def finish(self) -> None:
        if self._title_parts is not None:  # unterminated <title>
            self.title = _collapse("".join(self._title_parts))
            self._title_parts = None

    def body_text(self) -> str:
        return _collapse("".join(self._text))


def _resolve(url: str, base: str) -> str | None:
    try:
        return urljoin(base, url.strip())
    except ValueError:
        return None


def _is_web_url(url: str | None) -> bool:
    if not url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def parse_opengraph(
    html: str, base_url: str, *, max_description: int = 500
) -> dict[str, str | int]:
    """OpenGraph keys of a page, with fallbacks for pages that have none.

    Only the first value of each ``og:`` key is kept. URLs are made absolute against
    ``<base href>`` (if it is an http(s) URL) or ``base_url``; images that are not http(s)
    (``data:``, ``javascript:``) are dropped since a client could not fetch them safely.
    """
    parser = _OpenGraphParser(text_limit=max(max_description, 0) * 2 + 100)
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # the stdlib parser has raised on odd markup; keep what was collected
        pass
    parser.finish()

    base = base_url
    if parser.base_href:
        resolved_base = _resolve(parser.base_href, base_url)
        if _is_web_url(resolved_base):
            base = resolved_base or base_url

    result: dict[str, str | int] = {}
    for key, value in parser.og.items():
        if key in _URL_KEYS:
            url = _resolve(value, base)
            if key in _IMAGE_URL_KEYS and not _is_web_url(url):
                continue
            if url:
                result[key] = url
        elif key in _INT_KEYS:
            digits = value.strip()
            result[key] = int(digits) if _DIGITS.fullmatch(digits) else value
        else:
            result[key] = value

    if not result.get("og:title") and parser.title:
        result["og:title"] = parser.title

    if not result.get("og:description"):
        description = _collapse(parser.description or "") or parser.body_text()
        if description:
            result["og:description"] = _summarise(description, max_description)

    if "og:image" not in result:
        for candidate in (parser.itemprop_image, *parser.images):
            url = _resolve(candidate, base) if candidate else None
            if url and _is_web_url(url):
                result["og:image"] = url
                break
    return result
