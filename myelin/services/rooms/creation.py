"""Room creation (client-server API, "POST /createRoom"), in the spec's order of events:
create, the creator's join, power levels, canonical alias, preset events, initial_state, name
and topic, invites.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from myelin.core.events import PDU
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from myelin.errors import MatrixError, bad_json, invalid_param
from myelin.ids import UserID
from myelin.services.rooms.timeline import RoomState, Timeline
from myelin.storage.stores.aliases import AliasExistsError, AliasStore

PRESETS = {
    # preset: (join_rule, history_visibility, guest_access)
    "private_chat": ("invite", "shared", "can_join"),
    "trusted_private_chat": ("invite", "shared", "can_join"),
    "public_chat": ("public", "shared", "forbidden"),
}


@dataclass(frozen=True)
class RoomRequest:
    """A validated createRoom body."""

    visibility: str = "private"
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] = field(default_factory=list)
    room_version: str | None = None
    creation_content: Mapping[str, Any] = field(default_factory=dict)
    initial_state: list[tuple[str, str, Mapping[str, Any]]] = field(default_factory=list)
    preset: str | None = None
    is_direct: bool = False
    power_level_content_override: Mapping[str, Any] | None = None


def default_power_levels(room_version: RoomVersion, creator: str,
                         trusted_invitees: list[str]) -> dict[str, Any]:
    """What Synapse (and the spec's notes) give a new room: creators may do everything."""
    users = {} if room_version.privileged_creators else {creator: 100}
    if not room_version.privileged_creators:
        users.update({user: 100 for user in trusted_invitees})
    return {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            # v12: "MUST explicitly be higher than state_default", e.g. 150.
            "m.room.tombstone": 150 if room_version.privileged_creators else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
    }


class RoomCreator:
    def __init__(self, timeline: Timeline, aliases: AliasStore, server_name: str,
                 default_version: RoomVersion,
                 member_content: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
        self._member_content = member_content
        self._timeline = timeline
        self._aliases = aliases
        self._server_name = server_name
        self._default_version = default_version
        # Set by the federation layer: an invite of another server's user must carry that
        # server's signature (server-server API, "Inviting to a room").
        self.countersign_invite: Callable[[PDU, RoomState], Awaitable[PDU]] | None = None

    async def create(self, creator: str, request: RoomRequest) -> str:
        version = self._version(request.room_version)
        alias = self._alias(request.room_alias_name)
        if alias is not None and await self._aliases.get_room_id(alias) is not None:
            raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
        preset = request.preset or ("public_chat" if request.visibility == "public"
                                    else "private_chat")
        if preset not in PRESETS:
            raise invalid_param(f"Unknown preset {preset!r}")
        for user in request.invite:
            UserID.parse(user)
        trusted = request.invite if preset == "trusted_private_chat" else []

        content = dict(request.creation_content)
        content["room_version"] = version.identifier
        if not version.implicit_room_creator:
            content["creator"] = creator
        if version.privileged_creators and trusted:
            extra = content.get("additional_creators", [])
            if not isinstance(extra, list):
                raise bad_json("creation_content.additional_creators must be a list")
            content["additional_creators"] = list(dict.fromkeys([*extra, *trusted]))
        room_id = None if version.room_id_from_create_event else self._new_room_id()
        room, _ = await self._timeline.create_room(version, room_id, creator, content)
        room_id = room.room_id
        append = self._timeline.append

        await append(room_id, creator, "m.room.member",
                     {**await self._member_content(creator), "membership": "join"},
                     state_key=creator)
        levels = default_power_levels(version, creator, trusted)
        if request.power_level_content_override:
            levels.update(request.power_level_content_override)
        await append(room_id, creator, "m.room.power_levels", levels, state_key="")
        if alias is not None:
            try:
                await self._aliases.insert_alias(alias, room_id, creator, int(time.time() * 1000))
            except AliasExistsError:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken") from None
            await append(room_id, creator, "m.room.canonical_alias", {"alias": alias},
                         state_key="")
        join_rule, history, guests = PRESETS[preset]
        await append(room_id, creator, "m.room.join_rules", {"join_rule": join_rule},
                     state_key="")
        await append(room_id, creator, "m.room.history_visibility",
                     {"history_visibility": history}, state_key="")
        await append(room_id, creator, "m.room.guest_access", {"guest_access": guests},
                     state_key="")
        for event_type, state_key, state_content in request.initial_state:
            if request.name is not None and (event_type, state_key) == ("m.room.name", ""):
                continue
            if request.topic is not None and (event_type, state_key) == ("m.room.topic", ""):
                continue
            await append(room_id, creator, event_type, state_content, state_key=state_key)
        if request.name is not None:
            await append(room_id, creator, "m.room.name", {"name": request.name}, state_key="")
        if request.topic is not None:
            await append(room_id, creator, "m.room.topic", {
                "topic": request.topic,
                "m.topic": {"m.text": [{"body": request.topic, "mimetype": "text/plain"}]},
            }, state_key="")
        for user in request.invite:
            invite: dict[str, Any] = {**await self._member_content(user),
                                      "membership": "invite"}
            if request.is_direct:
                invite["is_direct"] = True
            remote = not user.endswith(":" + self._server_name)
            await self._timeline.append(
                room_id, creator, "m.room.member", invite, state_key=user,
                countersign=self.countersign_invite if remote else None)
        return room_id

    def _version(self, requested: str | None) -> RoomVersion:
        if requested is None:
            return self._default_version
        version = KNOWN_ROOM_VERSIONS.get(requested)
        if version is None:
            raise MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION",
                              f"Room version {requested!r} is not supported")
        return version

    def _alias(self, localpart: str | None) -> str | None:
        if localpart is None:
            return None
        alias = f"#{localpart}:{self._server_name}"
        if not localpart or ":" in localpart or "\x00" in localpart \
                or any(c.isspace() for c in localpart) or len(alias.encode()) > 255:
            raise invalid_param("Invalid room alias name")
        return alias

    def _new_room_id(self) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        return "!" + "".join(secrets.choice(alphabet) for _ in range(18)) + ":" + \
            self._server_name
