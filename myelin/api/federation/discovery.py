"""Server-server API, "Server discovery": the /.well-known/matrix/server delegation document."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.config import Config

routes = Routes()


def delegated_server(config: Config) -> str:
    """Where other servers should connect: the configured value, else public_baseurl's host:port.

    An explicit port is always given, since without one a resolver would try SRV records and
    port 8448 rather than the listener that actually serves this document.
    """
    if config.well_known.server:
        return config.well_known.server
    parts = urlsplit(config.base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


@routes.route("GET", "/.well-known/matrix/server", auth=Auth.NONE)
async def well_known_server(request: MatrixRequest) -> dict[str, Any]:
    return {"m.server": delegated_server(request.services.config)}
