"""Server ACL enforcement for requests about a room (server-server API, "Server Access
Control Lists (ACLs)"): the room's current ``m.room.server_acl`` decides."""

from __future__ import annotations

from myelin.core.server_acl import server_allowed
from myelin.errors import forbidden
from myelin.services.rooms.timeline import Timeline

SERVER_ACL = ("m.room.server_acl", "")


class RoomAcls:
    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline

    async def allows(self, room_id: str, server_name: str) -> bool:
        room = await self._timeline.room(room_id)
        if room is None or SERVER_ACL not in room.state:
            return True
        acl = (await self._timeline.state_events(room, [SERVER_ACL])).get(SERVER_ACL)
        return server_allowed(server_name, acl.content if acl is not None else None)

    async def check(self, room_id: str, server_name: str) -> None:
        """403 M_FORBIDDEN for a server the room's ACL denies."""
        if not await self.allows(room_id, server_name):
            raise forbidden("Your server is denied by this room's server ACL")
