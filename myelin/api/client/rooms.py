"""Client-server API, "Creation" of rooms and "Room membership" lists."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.services.rooms.creation import RoomRequest

routes = Routes()


class StateEventBody(msgspec.Struct):
    type: str
    content: dict[str, Any]
    state_key: str = ""


class CreateRoomBody(msgspec.Struct):
    visibility: Literal["public", "private"] = "private"
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] = []
    invite_3pid: list[dict[str, Any]] = []
    room_version: str | None = None
    creation_content: dict[str, Any] = {}
    initial_state: list[StateEventBody] = []
    preset: str | None = None
    is_direct: bool = False
    power_level_content_override: dict[str, Any] | None = None


@routes.client("POST", "/createRoom", body=CreateRoomBody, body_optional=True)
async def create_room(request: MatrixRequest) -> dict[str, Any]:
    body: CreateRoomBody = request.body
    room_id = await request.services.room_creator.create(request.user.user_id, RoomRequest(
        visibility=body.visibility, room_alias_name=body.room_alias_name, name=body.name,
        topic=body.topic, invite=body.invite, room_version=body.room_version,
        creation_content=body.creation_content,
        initial_state=[(s.type, s.state_key, s.content) for s in body.initial_state],
        preset=body.preset, is_direct=body.is_direct,
        power_level_content_override=body.power_level_content_override,
    ))
    if body.visibility == "public":
        await request.services.directory.publish(room_id)
    return {"room_id": room_id}


@routes.client("GET", "/joined_rooms")
async def joined_rooms(request: MatrixRequest) -> dict[str, Any]:
    rooms = await request.services.state_store.list_rooms_for_user(request.user.user_id, "join")
    return {"joined_rooms": sorted(rooms)}


class UpgradeBody(msgspec.Struct):
    new_version: str
    additional_creators: list[str] = []


@routes.client("POST", "/rooms/{roomId}/upgrade", body=UpgradeBody)
async def upgrade(request: MatrixRequest) -> dict[str, Any]:
    body: UpgradeBody = request.body
    new_room = await request.services.upgrader.upgrade(
        request.user.user_id, request.params["roomId"], body.new_version,
        body.additional_creators)
    return {"replacement_room": new_room}
