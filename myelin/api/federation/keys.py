"""Server-server API, "Retrieving server keys": our published keys, and answers as a notary.

All three endpoints are unauthenticated (other servers call them before they can check any
signature) and the keyring does the work; see ``Keyring.own_key_response`` and
``Keyring.notary_response``.
"""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest
from myelin.services.federation.keyring import Keyring

routes = Routes()


def _keyring(request: MatrixRequest) -> Keyring:
    return request.services.keyring


@routes.route("GET", "/_matrix/key/v2/server", auth=Auth.NONE)
async def server_keys(request: MatrixRequest) -> dict[str, Any]:
    return _keyring(request).own_key_response()


@routes.route("GET", "/_matrix/key/v2/query/{serverName}", auth=Auth.NONE)
async def query_server_keys(request: MatrixRequest) -> dict[str, Any]:
    # "If not supplied, the notary server MUST use the current time" (0 is read the same way).
    minimum = request.query_int("minimum_valid_until_ts", 0) or None
    return await _keyring(request).notary_response(
        {request.params["serverName"]: {}}, minimum_valid_until_ts=minimum)


@routes.route("POST", "/_matrix/key/v2/query", auth=Auth.NONE, body=dict)
async def bulk_query_server_keys(request: MatrixRequest) -> dict[str, Any]:
    return await _keyring(request).notary_response(request.body.get("server_keys"))
