"""Matrix identifiers, parsed and validated once at the edges (appendices, "Identifier Grammar").

Inside the server an identifier that exists as one of these types is known to be well formed,
so no layer below the edge re-validates strings.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from myelin.errors import MatrixError

# Appendices, "Server Name": hostname [":" port], hostname = IPv4 / "[" IPv6 "]" / dns-name.
_DNS_NAME = re.compile(r"[A-Za-z0-9.\-]{1,255}")
_PORT = re.compile(r"[0-9]{1,5}")
# Appendices, "User Identifiers": the grammar new local user IDs must follow (v1.8+).
_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
# The historical grammar: any printable ASCII except ':'. Remote servers may still send these.
_HISTORICAL_LOCALPART = re.compile(r"[\x21-\x39\x3b-\x7e]+")
MAX_ID_BYTES = 255


def is_valid_server_name(name: str) -> bool:
    """True if ``name`` matches the spec's server_name grammar (case is kept, not folded)."""
    if not name or len(name) > 255:
        return False
    host, port = name, None
    if name.startswith("["):
        end = name.find("]")
        if end < 0:
            return False
        host, rest = name[1:end], name[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return False
            port = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    else:
        if ":" in name:
            host, port = name.rsplit(":", 1)
        if not _DNS_NAME.fullmatch(host):
            return False
    return port is None or (_PORT.fullmatch(port) is not None and 0 < int(port) < 65536)


def split_server_name(name: str) -> tuple[str, int | None]:
    """Split a valid server name into (host, port); IPv6 hosts lose their brackets."""
    if name.startswith("["):
        end = name.index("]")
        rest = name[end + 1 :]
        return name[1:end], int(rest[1:]) if rest else None
    if ":" in name:
        host, port = name.rsplit(":", 1)
        return host, int(port)
    return name, None


@dataclass(frozen=True, slots=True)
class UserID:
    """``@localpart:domain``; ``str(user_id)`` gives the wire form back."""

    localpart: str
    domain: str

    @classmethod
    def parse(cls, text: str) -> UserID:
        """Parse any user ID a peer may send (the historical grammar is accepted)."""
        if not isinstance(text, str) or not text.startswith("@") or ":" not in text:
            raise invalid_user_id(text)
        localpart, domain = text[1:].split(":", 1)
        if (
            len(text.encode()) > MAX_ID_BYTES
            or not _HISTORICAL_LOCALPART.fullmatch(localpart)
            or not is_valid_server_name(domain)
        ):
            raise invalid_user_id(text)
        return cls(localpart, domain)

    @classmethod
    def for_new_local_user(cls, localpart: str, server_name: str) -> UserID:
        """Build the ID of an account about to be created: the strict v1.8 grammar applies."""
        if not _LOCALPART.fullmatch(localpart):
            raise MatrixError(
                400,
                "M_INVALID_USERNAME",
                "User ID may only contain the characters a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
            )
        user_id = cls(localpart, server_name)
        if len(str(user_id).encode()) > MAX_ID_BYTES:
            raise MatrixError(400, "M_INVALID_USERNAME", "User ID is longer than 255 bytes")
        return user_id

    def __str__(self) -> str:
        return f"@{self.localpart}:{self.domain}"


def invalid_user_id(text: object) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", f"Invalid user ID: {text!r}")
