"""Membership changes of local users (client-server API, "Room membership"): join, invite,
leave, kick, ban, unban, knock, forget. Each is one event through the timeline, so the
authorization rules decide who may do what; this module only shapes the events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from myelin.core.auth import PowerLevels
from myelin.core.events import PDU
from myelin.errors import MatrixError, forbidden, not_found
from myelin.ids import UserID
from myelin.services.directory import RoomAlias
from myelin.services.rooms.membership_cache import UserMemberships
from myelin.services.rooms.timeline import CREATE, RoomState, Timeline
from myelin.storage.stores.aliases import AliasStore
from myelin.storage.stores.state import StateStore

MemberContent = Callable[[str], Awaitable[dict[str, Any]]]


class RemoteRooms(Protocol):
    """Joining rooms hosted elsewhere (implemented by the federation layer)."""

    async def join_remote(self, user_id: str, room_id: str, servers: Iterable[str],
                          content: dict[str, Any]) -> None: ...

    async def resolve_remote_alias(self, alias: str) -> tuple[str, list[str]]: ...

    async def countersign_invite(self, pdu: PDU, room: RoomState) -> PDU: ...

    async def leave_remote(self, user_id: str, room_id: str, servers: Iterable[str],
                           content: dict[str, Any]) -> None: ...

    async def knock_remote(self, user_id: str, room_id: str, servers: Iterable[str],
                           content: dict[str, Any]) -> None: ...

    async def servers_in_room(self, room_id: str) -> list[str]: ...
JOIN_RULES = ("m.room.join_rules", "")
POWER_LEVELS = ("m.room.power_levels", "")


class MembershipService:
    def __init__(self, timeline: Timeline, state: StateStore, aliases: AliasStore,
                 server_name: str, member_content: MemberContent,
                 remote: RemoteRooms | None = None, *,
                 user_memberships: UserMemberships | None = None) -> None:
        self._user_memberships = user_memberships
        self._member_content = member_content
        self._remote = remote
        self._timeline = timeline
        self._state = state
        self._aliases = aliases
        self._server_name = server_name

    async def resolve_room(self, room_id_or_alias: str) -> str:
        return (await self._resolve_with_servers(room_id_or_alias))[0]

    async def _resolve_with_servers(self, room_id_or_alias: str) -> tuple[str, list[str]]:
        """The room ID, and servers in the room a remote alias named."""
        if room_id_or_alias.startswith("#"):
            alias = RoomAlias.parse(room_id_or_alias)
            if alias.domain != self._server_name and self._remote is not None:
                return await self._remote.resolve_remote_alias(str(alias))
            room_id = await self._aliases.get_room_id(room_id_or_alias)
            if room_id is None:
                raise not_found("Room alias not found")
            return room_id, []
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(400, "M_INVALID_PARAM", "Expected a room ID or alias")
        return room_id_or_alias, []

    async def join(self, user_id: str, room_id_or_alias: str,
                   reason: str | None = None, *, via: Iterable[str] = ()) -> str:
        room_id, alias_servers = await self._resolve_with_servers(room_id_or_alias)
        if not await self._server_in_room(room_id):
            if self._remote is None:
                raise not_found("No known room with that ID")
            content = await self._member_content(user_id)
            if reason:
                content["reason"] = reason
            servers = [*via, *alias_servers, *await self._invite_servers(room_id, user_id)]
            if ":" in room_id:  # room versions 1-11 name the server that created the room
                servers.append(room_id.split(":", 1)[1])
            await self._remote.join_remote(user_id, room_id, servers, content)
            return room_id
        current = await self._state.get_membership(room_id, user_id)
        if current is not None and current[0] == "join":
            return room_id  # already joined: idempotent, as Synapse does
        extra: dict[str, Any] = {}
        if current is None or current[0] != "invite":
            authoriser = await self.restricted_join_authoriser(room_id, user_id)
            if authoriser is not None:
                extra["join_authorised_via_users_server"] = authoriser
        await self._change(room_id, user_id, user_id, "join", reason, extra)
        return room_id

    async def _server_in_room(self, room_id: str) -> bool:
        """Whether this server can build the join itself: it knows the room and a local user
        is in it (or it is a room of this server only, e.g. one all users left)."""
        room = await self._timeline.room(room_id)
        if room is None or not room.extremities:  # unknown, or only an invite's outliers
            return False
        if self._remote is None:
            return True
        servers = await self._remote.servers_in_room(room_id)
        return not servers or self._server_name in servers

    async def _invite_servers(self, room_id: str, user_id: str) -> list[str]:
        """The inviting server, when the user holds an invite to a room held elsewhere."""
        current = await self._state.get_membership(room_id, user_id)
        if current is None or current[0] not in ("invite", "knock"):
            return []
        invite = (await self._timeline.get_pdus([current[1]])).get(current[1])
        return [invite.sender.split(":", 1)[1]] if invite and ":" in invite.sender else []

    async def restricted_join_authoriser(self, room_id: str, user_id: str) -> str | None:
        """Client-server API, "Restricted rooms": a user who is a member of one of the rooms in
        the join rule's ``allow`` list may join without an invite; the join names a local
        member able to invite, whose server (this one) vouches for it by signing."""
        room = await self._timeline.room(room_id)
        if room is None:
            return None
        version = room.room_version
        rules = await self._timeline.state_events(room, [JOIN_RULES, POWER_LEVELS, CREATE])
        join_rules = rules.get(JOIN_RULES)
        rule = join_rules.content.get("join_rule") if join_rules else None
        if not (rule == "restricted" and version.restricted_join_rule) and \
                not (rule == "knock_restricted" and version.knock_restricted_join_rule):
            return None
        allow = join_rules.content.get("allow") if join_rules else None
        allowed = False
        for condition in allow if isinstance(allow, list) else []:
            if isinstance(condition, dict) and condition.get("type") == "m.room_membership":
                other = condition.get("room_id")
                if isinstance(other, str):
                    membership = await self._state.get_membership(other, user_id)
                    if membership is not None and membership[0] == "join":
                        allowed = True
                        break
        if not allowed:
            return None
        levels = PowerLevels.from_state(rules, version)
        needed = levels.level("invite")
        domain = ":" + self._server_name
        for (event_type, member), _ in sorted(room.state.items()):
            if event_type != "m.room.member" or not member.endswith(domain):
                continue
            status = await self._state.get_membership(room_id, member)
            if status is not None and status[0] == "join" and levels.user_level(member) >= needed:
                return member
        raise forbidden("No user of this server in the room may authorise your join")

    async def knock(self, user_id: str, room_id_or_alias: str, reason: str | None, *,
                    via: Iterable[str] = ()) -> str:
        room_id, alias_servers = await self._resolve_with_servers(room_id_or_alias)
        if not await self._server_in_room(room_id):
            if self._remote is None:
                raise not_found("No known room with that ID")
            content = await self._member_content(user_id)
            if reason:
                content["reason"] = reason
            servers = [*via, *alias_servers]
            if ":" in room_id:
                servers.append(room_id.split(":", 1)[1])
            await self._remote.knock_remote(user_id, room_id, servers, content)
            return room_id
        await self._change(room_id, user_id, user_id, "knock", reason)
        return room_id

    async def leave(self, user_id: str, room_id: str, reason: str | None) -> None:
        current = await self._state.get_membership(room_id, user_id)
        if current is None or current[0] in ("leave", "ban"):
            raise forbidden("You are not in this room")
        if self._remote is not None and not await self._server_in_room(room_id):
            # Rejecting an invite (or retracting a knock) of a room held elsewhere.
            servers = await self._invite_servers(room_id, user_id)
            if ":" in room_id:
                servers.append(room_id.split(":", 1)[1])
            await self._remote.leave_remote(user_id, room_id, servers,
                                            {"reason": reason} if reason else {})
            return
        await self._change(room_id, user_id, user_id, "leave", reason)

    async def invite(self, sender: str, room_id: str, target: str,
                     reason: str | None) -> None:
        remote = UserID.parse(target).domain != self._server_name and self._remote is not None
        await self._change(room_id, sender, target, "invite", reason, remote_invite=remote)

    async def kick(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        UserID.parse(target)
        current = await self._state.get_membership(room_id, target)
        if current is None or current[0] not in ("join", "invite", "knock"):
            raise forbidden("The user is not in this room")
        await self._change(room_id, sender, target, "leave", reason)

    async def ban(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        UserID.parse(target)
        await self._change(room_id, sender, target, "ban", reason)

    async def unban(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        UserID.parse(target)
        current = await self._state.get_membership(room_id, target)
        if current is None or current[0] != "ban":
            raise MatrixError(400, "M_BAD_STATE", "The user is not banned")
        await self._change(room_id, sender, target, "leave", reason)

    async def forget(self, user_id: str, room_id: str) -> None:
        """POST /rooms/{id}/forget: only rooms the user is no longer in."""
        current = await self._state.get_membership(room_id, user_id)
        if current is not None and current[0] in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "Leave the room before forgetting it")
        await self._state.forget(room_id, user_id)
        if self._user_memberships is not None:
            self._user_memberships.forgot(user_id)

    async def require_joined(self, room_id: str, user_id: str) -> None:
        """403 unless ``user_id`` is joined to ``room_id`` (unknown rooms look the same)."""
        current = await self._state.get_membership(room_id, user_id)
        if current is None or current[0] != "join":
            raise forbidden("You are not in this room")

    async def _change(self, room_id: str, sender: str, target: str, membership: str,
                      reason: str | None, extra: dict[str, Any] | None = None, *,
                      remote_invite: bool = False) -> None:
        content: dict[str, Any] = {"membership": membership, **(extra or {})}
        if membership in ("join", "invite", "knock"):
            # The member's profile travels with the membership (displayname, avatar_url).
            content = {**await self._member_content(target), **content}
        if reason:
            content["reason"] = reason
        countersign = None
        if remote_invite and self._remote is not None:
            countersign = self._remote.countersign_invite
        await self._timeline.append(room_id, sender, "m.room.member", content,
                                    state_key=target, countersign=countersign)
