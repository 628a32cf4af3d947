"""Client-server API, module "End-to-End Encryption": key upload, query, claim, changes and
cross-signing."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.services.sync import parse_sync_token

routes = Routes()


class UploadBody(msgspec.Struct):
    device_keys: dict[str, Any] | None = None
    one_time_keys: dict[str, Any] | None = None
    fallback_keys: dict[str, Any] | None = None


class QueryBody(msgspec.Struct):
    device_keys: dict[str, list[str]]
    timeout: int | None = None


class ClaimBody(msgspec.Struct):
    one_time_keys: dict[str, dict[str, str]]
    timeout: int | None = None


@routes.client("POST", "/keys/upload", body=UploadBody)
async def upload(request: MatrixRequest) -> dict[str, Any]:
    body: UploadBody = request.body
    counts = await request.services.e2e_keys.upload(
        request.user.user_id, request.user.device_id, body.device_keys, body.one_time_keys,
        body.fallback_keys)
    return {"one_time_key_counts": counts}


@routes.client("POST", "/keys/query", body=QueryBody)
async def query(request: MatrixRequest) -> dict[str, Any]:
    body: QueryBody = request.body
    return await request.services.e2e_keys.query(request.user.user_id, body.device_keys)


@routes.client("POST", "/keys/claim", body=ClaimBody)
async def claim(request: MatrixRequest) -> dict[str, Any]:
    body: ClaimBody = request.body
    return await request.services.e2e_keys.claim(body.one_time_keys)


@routes.client("GET", "/keys/changes")
async def changes(request: MatrixRequest) -> dict[str, Any]:
    since = parse_sync_token(request.require_query("from"))
    upto = parse_sync_token(request.require_query("to"))
    changed, left = await request.services.e2e_keys.device_list_changes(
        request.user.user_id, since, upto)
    return {"changed": changed, "left": left}


@routes.client("POST", "/keys/device_signing/upload", body=dict, versions=("v3",))
async def upload_cross_signing_keys(request: MatrixRequest) -> dict[str, Any]:
    await request.services.cross_signing.upload_keys(request.user, request.body)
    return {}


@routes.client("POST", "/keys/signatures/upload", body=dict, versions=("v3",))
async def upload_signatures(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.cross_signing.upload_signatures(request.user.user_id,
                                                                  request.body)
