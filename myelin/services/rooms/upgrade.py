"""Room upgrades (client-server API, module "Room Upgrades", "Server behaviour"): a new room
of the requested version that continues the old one, whose last word is a tombstone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from myelin.core.auth import PowerLevels
from myelin.core.auth.levels import creators
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS
from myelin.errors import MatrixError, forbidden
from myelin.ids import UserID
from myelin.services.directory import DirectoryService
from myelin.services.rooms.creation import RoomCreator, RoomRequest
from myelin.services.rooms.timeline import CREATE, Timeline
from myelin.storage.stores.aliases import AliasStore

POWER_LEVELS = ("m.room.power_levels", "")
# Step 3's recommended transferable state (power levels are handled on their own).
TRANSFERRED = ("m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar",
               "m.room.topic", "m.room.guest_access", "m.room.history_visibility",
               "m.room.join_rules", "m.room.canonical_alias")


class RoomUpgrader:
    def __init__(self, timeline: Timeline, creator: RoomCreator, aliases: AliasStore,
                 directory: DirectoryService) -> None:
        self._timeline = timeline
        self._creator = creator
        self._aliases = aliases
        self._directory = directory

    async def upgrade(self, user_id: str, old_room_id: str, new_version_id: str,
                      additional_creators: list[str]) -> str:
        new_version = KNOWN_ROOM_VERSIONS.get(new_version_id)
        if new_version is None:
            raise MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION",
                              f"Room version {new_version_id!r} is not supported")
        for extra in additional_creators:
            UserID.parse(extra)
        if additional_creators and not new_version.privileged_creators:
            raise MatrixError(400, "M_INVALID_PARAM",
                              "This room version has no additional creators")
        room = await self._timeline.room(old_room_id)
        if room is None:
            raise forbidden("You are not in this room")
        keys = [CREATE, POWER_LEVELS, ("m.room.member", user_id),
                *((t, "") for t in TRANSFERRED)]
        state = await self._timeline.state_events(room, keys)
        member = state.get(("m.room.member", user_id))
        if member is None or member.membership != "join":
            raise forbidden("You are not in this room")
        # Step 1: permission to send the tombstone.
        levels = PowerLevels.from_state(state, room.room_version)
        if levels.user_level(user_id) < levels.required_level("m.room.tombstone", True):
            raise forbidden("You may not upgrade this room")

        # Step 2: the new room, naming its predecessor and keeping the room type.
        old_create = state[CREATE]
        predecessor: dict[str, Any] = {"room_id": old_room_id}
        if not new_version.room_id_from_create_event:
            predecessor["event_id"] = old_create.event_id
        creation: dict[str, Any] = {"predecessor": predecessor}
        if "type" in old_create.content:
            creation["type"] = old_create.content["type"]
        if additional_creators:
            creation["additional_creators"] = additional_creators
        new_creators = {user_id, *additional_creators} if new_version.privileged_creators \
            else set()
        content = self._power_levels(state, room.room_version, user_id, new_creators)
        initial_state: list[tuple[str, str, Mapping[str, Any]]] = [
            (t, "", dict(state[(t, "")].content)) for t in TRANSFERRED
            if (t, "") in state and t != "m.room.canonical_alias"]
        new_room_id = await self._creator.create(user_id, RoomRequest(
            room_version=new_version_id, creation_content=creation,
            power_level_content_override=content, initial_state=initial_state,
        ))

        # Step 4: local aliases move, with the canonical alias.
        moved = await self._move_aliases(old_room_id, new_room_id)
        canonical = state.get(("m.room.canonical_alias", ""))
        if canonical is not None and moved:
            await self._timeline.append(new_room_id, user_id, "m.room.canonical_alias",
                                        dict(canonical.content), state_key="")
            await self._timeline.append(old_room_id, user_id, "m.room.canonical_alias", {},
                                        state_key="")
        # The published room list points at the new room from now on.
        if await self._directory.get_visibility(old_room_id) == "public":
            await self._directory.publish(new_room_id)
            await self._directory.unpublish(old_room_id)
        # Step 5: the tombstone.
        await self._timeline.append(old_room_id, user_id, "m.room.tombstone", {
            "body": "This room has been replaced", "replacement_room": new_room_id,
        }, state_key="")
        # Step 6: keep the old room quiet, if this user may still change its power levels.
        await self._restrict_old_room(old_room_id, user_id, state)
        return new_room_id

    @staticmethod
    def _power_levels(state: dict[Any, Any], old_version: Any, user_id: str,
                      new_creators: set[str]) -> dict[str, Any]:
        """The old room's power levels, valid for the new room: creators of a v12+ room may not
        be listed, and in older versions the upgrader needs an explicit level to set up state."""
        event = state.get(POWER_LEVELS)
        content = dict(event.content) if event is not None else {}
        users = dict(content.get("users") or {})
        if new_creators:
            for creator in new_creators:
                users.pop(creator, None)
        else:
            old_creators = creators(state.get(CREATE)) if old_version.privileged_creators \
                else frozenset()
            for creator in old_creators:
                users.setdefault(creator, 100)
            users[user_id] = max(int(users.get(user_id, 0)), 100)
        content["users"] = users
        return content

    async def _restrict_old_room(self, room_id: str, user_id: str,
                                 state: dict[Any, Any]) -> None:
        event = state.get(POWER_LEVELS)
        content = dict(event.content) if event is not None else {}
        users_default = int(content.get("users_default", 0) or 0)
        restricted = max(50, users_default + 1)
        content["events_default"] = restricted
        content["invite"] = restricted
        # "If possible": without the power to, the tombstone alone marks the room replaced.
        with contextlib.suppress(MatrixError):
            await self._timeline.append(room_id, user_id, "m.room.power_levels", content,
                                        state_key="")

    async def _move_aliases(self, old_room_id: str, new_room_id: str) -> list[str]:
        moved = []
        for alias in await self._aliases.list_aliases(old_room_id):
            creator = await self._aliases.get_creator(alias) or ""
            if await self._aliases.delete_alias(alias):
                await self._aliases.insert_alias(alias, new_room_id, creator,
                                                 int(time.time() * 1000))
                moved.append(alias)
        return moved
