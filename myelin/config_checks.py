"""The value checks of the configuration schema (``myelin.config``): each returns what was
expected, worded for the one-line start-up error, or None when the value is fine. Kept apart
from the schema so the dataclasses there read as the list of settings they are."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from myelin.ids import is_valid_server_name

Check = Callable[[Any], str | None]  # returns what is expected, or None when the value is fine
THUMBNAIL_METHODS = ("crop", "scale")


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else "one of " + ", ".join(repr(c) for c in choices)


def port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else "a port number between 0 and 65535"


def positive(v: float) -> str | None:
    return None if v > 0 else "a number greater than 0"


def non_negative(v: float) -> str | None:
    return None if v >= 0 else "a number >= 0"


def server_name(v: str) -> str | None:
    if is_valid_server_name(v):
        return None
    return "a server name such as example.org or localhost:8008"


def http_url_or_empty(v: str) -> str | None:
    if not v:
        return None
    parts = urlsplit(v)
    ok = parts.scheme in ("http", "https") and parts.netloc
    return None if ok else "an http(s):// URL, or empty"


def bcrypt_rounds(v: int) -> str | None:
    return None if 4 <= v <= 31 else "an integer between 4 and 31"


def turn_uris(v: tuple[str, ...]) -> str | None:
    ok = all(uri.startswith(("turn:", "turns:")) for uri in v)
    return None if ok else "a list of turn: or turns: URIs"


def parse_thumbnail_size(spec: str) -> tuple[int, int, str] | None:
    """``"320x240 scale"`` -> (320, 240, "scale"); None when it is not of that form."""
    size, _, method = spec.strip().partition(" ")
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()) or method.strip() not in THUMBNAIL_METHODS:
        return None
    if not (0 < int(width) <= 10_000 and 0 < int(height) <= 10_000):
        return None
    return int(width), int(height), method.strip()


def thumbnail_sizes(v: tuple[str, ...]) -> str | None:
    ok = all(parse_thumbnail_size(spec) is not None for spec in v)
    return None if ok else "a list of 'WIDTHxHEIGHT crop|scale' entries such as '96x96 crop'"


def ip_ranges(v: tuple[str, ...]) -> str | None:
    try:
        for cidr in v:
            ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return "a list of IP ranges in CIDR form, such as 10.0.0.0/8 or fc00::/7"
    return None


def host_port_or_empty(v: str) -> str | None:
    if not v:
        return None
    host, sep, port = v.rpartition(":")
    ok = sep and port.isdigit() and 0 <= int(port) <= 65535 and host.strip("[]")
    return None if ok else "HOST:PORT, such as 0.0.0.0:8448, or empty"


def notary(v: tuple[str, ...]) -> str | None:
    for entry in v:
        name, _, keys = entry.partition(" ")
        if not is_valid_server_name(name) or not all(
                k.count("=") >= 1 and k.split("=", 1)[0].startswith("ed25519:")
                for k in keys.split()):
            return ("a list of 'SERVER ed25519:KEYID=BASE64KEY ...' entries, e.g. "
                    "'matrix.org ed25519:auto=Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw'")
    return None


def is_ed25519_key_base64(text: str) -> bool:
    try:
        return len(base64.b64decode(text + "=" * (-len(text) % 4), validate=True)) == 32
    except ValueError:
        return False


def old_signing_key(v: tuple[str, ...]) -> str | None:
    for entry in v:
        parts = entry.split()
        if (len(parts) != 3 or not parts[0].startswith("ed25519:") or not parts[2].isdigit()
                or not is_ed25519_key_base64(parts[1])):
            return ("a list of 'ed25519:KEYID BASE64_VERIFY_KEY EXPIRED_TS_MS' entries, e.g. "
                    "'ed25519:a_old Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw 1767225600000'")
    return None


def parse_old_signing_keys(entries: tuple[str, ...]) -> dict[str, tuple[str, int]]:
    """{key ID: (base64 verify key, expired_ts)} from ``federation.old_signing_keys``."""
    return {kid: (b64, int(ts)) for kid, b64, ts in (e.split() for e in entries)}
