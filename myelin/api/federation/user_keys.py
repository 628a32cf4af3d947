"""Server-server API, "Device Management" and "End-to-End Encryption": other servers fetch a
local user's device list (``GET /user/devices/{userId}``), query device and cross-signing keys
(``POST /user/keys/query``) and claim one-time keys (``POST /user/keys/claim``) for their
users' clients. Only local users are answered for."""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()

V1 = "/_matrix/federation/v1"


@routes.route("GET", f"{V1}/user/devices/{{userId}}", auth=Auth.FEDERATION)
async def user_devices(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.e2e_keys.federation_user_devices(request.params["userId"])


@routes.route("POST", f"{V1}/user/keys/query", auth=Auth.FEDERATION, body=dict)
async def query_keys(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.e2e_keys.federation_query(request.body)


@routes.route("POST", f"{V1}/user/keys/claim", auth=Auth.FEDERATION, body=dict)
async def claim_keys(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.e2e_keys.federation_claim(request.body)
