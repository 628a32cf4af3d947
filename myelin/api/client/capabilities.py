"""Client-server API, "Capabilities negotiation"."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.core.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS

routes = Routes()


@routes.client("GET", "/capabilities")
async def capabilities(request: MatrixRequest) -> dict[str, Any]:
    return {"capabilities": {
        "m.change_password": {"enabled": True},
        "m.room_versions": {
            "default": DEFAULT_ROOM_VERSION.identifier,
            "available": {v.identifier: "stable" if v.stable else "unstable"
                          for v in KNOWN_ROOM_VERSIONS.values()},
        },
        "m.3pid_changes": {"enabled": False},
        "m.get_login_token": {"enabled": True},
        "m.profile_fields": {"enabled": True},
    }}
