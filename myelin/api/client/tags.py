"""Client-server API, module "Room Tagging": tags live in the room's ``m.tag`` account data,
so they reach every device through /sync like any account data."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import MatrixError, forbidden, invalid_param

routes = Routes()
TAGS = "m.tag"


class TagBody(msgspec.Struct, forbid_unknown_fields=False):
    order: float | None = None


async def _tags(request: MatrixRequest) -> dict[str, Any]:
    owner, room_id = request.params["userId"], request.params["roomId"]
    if request.user.user_id != owner:
        raise forbidden("Cannot use the tags of another user")
    if not room_id.startswith("!"):
        raise invalid_param("Invalid room ID")
    try:
        content = await request.services.account_data.get(owner, owner, room_id, TAGS)
    except MatrixError as e:
        if e.status != 404:
            raise
        content = {}
    tags = content.get("tags")
    return dict(tags) if isinstance(tags, dict) else {}


@routes.client("GET", "/user/{userId}/rooms/{roomId}/tags")
async def get_tags(request: MatrixRequest) -> dict[str, Any]:
    return {"tags": await _tags(request)}


@routes.client("PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}", body=TagBody)
async def put_tag(request: MatrixRequest) -> dict[str, Any]:
    tag = request.params["tag"]
    if not tag or len(tag.encode()) > 255:
        raise invalid_param("Tag names are 1 to 255 bytes")
    body: TagBody = request.body
    tags = await _tags(request)
    tags[tag] = {} if body.order is None else {"order": body.order}
    await request.services.account_data.put_managed(
        request.user.user_id, request.params["roomId"], TAGS, {"tags": tags})
    return {}


@routes.client("DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}")
async def delete_tag(request: MatrixRequest) -> dict[str, Any]:
    tags = await _tags(request)
    if tags.pop(request.params["tag"], None) is not None:
        await request.services.account_data.put_managed(
            request.user.user_id, request.params["roomId"], TAGS, {"tags": tags})
    return {}
