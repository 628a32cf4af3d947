"""Client-server API, "Server Discovery" and "API Versions"."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()

# Only spec versions whose every endpoint Myelin serves are advertised: a client that sees a
# version listed is entitled to use all of it. Grows as the client-server issues land.
SPEC_VERSIONS: tuple[str, ...] = ()
UNSTABLE_FEATURES: dict[str, bool] = {}


# Auth.NONE: clients send a stale token here too, and must still learn what the server speaks.
@routes.route("GET", "/_matrix/client/versions", auth=Auth.NONE)
async def versions(request: MatrixRequest) -> dict[str, Any]:
    return {"versions": list(SPEC_VERSIONS), "unstable_features": UNSTABLE_FEATURES}


@routes.route("GET", "/.well-known/matrix/client", auth=Auth.NONE)
async def well_known_client(request: MatrixRequest) -> dict[str, Any]:
    config = request.services.config
    base_url = config.well_known.client_base_url or config.base_url
    return {"m.homeserver": {"base_url": base_url.rstrip("/")}}
