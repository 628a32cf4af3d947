"""Server ACLs (client-server API, "Server Access Control Lists (ACLs) for rooms", and the
``m.room.server_acl`` event schema): whether a server may take part in a room.

Pure: the caller passes the room's current ``m.room.server_acl`` content (or None).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from myelin.ids import split_server_name


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    # Appendices, "Glob-style matching": * any run of characters, ? exactly one.
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _matches(host: str, patterns: Any) -> bool:
    if not isinstance(patterns, list):
        return False
    return any(isinstance(p, str) and _glob(p).fullmatch(host) for p in patterns)


def server_allowed(server_name: str, acl: Mapping[str, Any] | None) -> bool:
    """The event schema's five steps, in order; the port is never considered."""
    if acl is None:  # 1
        return True
    try:
        host, _ = split_server_name(server_name)
    except ValueError:
        return False
    host = host.strip("[]")
    if acl.get("allow_ip_literals") is False:  # 2
        try:
            ipaddress.ip_address(host)
            return False
        except ValueError:
            pass
    if _matches(host, acl.get("deny")):  # 3
        return False
    return _matches(host, acl.get("allow"))  # 4, else 5
