"""The room directory: local room aliases (client-server API, "Room aliases") and the
published room directory ("Published room directory", ``/publicRooms``).

Where the spec leaves permissions to the server, Synapse's rules apply, so rooms and clients
behave the same after a move:

* creating an alias: being joined to the room, or a server admin;
* deleting an alias: its creator, a server admin, or a joined member with the power to send
  ``m.room.canonical_alias`` (the room's "moderators");
* changing a room's directory visibility: a server admin or such a moderator;
* listing a room's local aliases: joined members, anyone if the room is world_readable, and
  server admins.

Aliases on other servers would be resolved over federation, which this server does not speak
yet: they resolve to 404, and another server's published directory answers 502 (what Synapse
answers when that server cannot be reached).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from myelin.core.auth.levels import CREATE, POWER_LEVELS, PowerLevels
from myelin.core.events import PDU, StateKey
from myelin.errors import MatrixError, forbidden, invalid_param, not_found
from myelin.ids import is_valid_server_name
from myelin.services.auth import Requester
from myelin.services.rooms.timeline import Timeline
from myelin.storage.stores.aliases import AliasExistsError, AliasStore
from myelin.storage.stores.directory import DirectoryStore
from myelin.storage.stores.state import StateStore

log = logging.getLogger(__name__)

MAX_ALIAS_BYTES = 255  # appendices, "Room Aliases"
CANONICAL_ALIAS: StateKey = ("m.room.canonical_alias", "")
HISTORY_VISIBILITY: StateKey = ("m.room.history_visibility", "")


@dataclass(frozen=True, slots=True)
class RoomAlias:
    """``#localpart:domain``. Appendices, "Room Aliases": the localpart may hold any
    non-surrogate code point except ``:`` and NUL, and the whole alias at most 255 bytes; like
    Synapse we also refuse an empty localpart and whitespace in it."""

    localpart: str
    domain: str

    @classmethod
    def parse(cls, text: object) -> RoomAlias:
        if not isinstance(text, str) or not text.startswith("#") or ":" not in text:
            raise invalid_alias(text)
        localpart, domain = text[1:].split(":", 1)
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate
            raise invalid_alias(text) from None
        if (not localpart or size > MAX_ALIAS_BYTES or "\x00" in localpart
                or any(c.isspace() for c in localpart) or not is_valid_server_name(domain)):
            raise invalid_alias(text)
        return cls(localpart, domain)

    def __str__(self) -> str:
        return f"#{self.localpart}:{self.domain}"


def invalid_alias(text: object) -> MatrixError:
    return invalid_param(f"Invalid room alias: {text!r}")


def guest_forbidden() -> MatrixError:
    return MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is not allowed here")


@dataclass(frozen=True)
class PublicRoomsQuery:
    """One ``/publicRooms`` request (GET query or POST body, already shape-checked)."""

    limit: int | None = None
    since: str | None = None
    search_term: str | None = None
    room_types: Sequence[str | None] | None = None
    server: str | None = None
    include_all_networks: bool = False
    third_party_instance_id: str | None = None


# A room's place in the directory's order: most joined members first, then by room ID.
_Key = tuple[int, str]


def _key_token(direction: str, key: _Key | None) -> str:
    """``n``: the rooms after ``key``; ``p``: the rooms before it. Without a key, ``n`` starts
    at the beginning and ``p`` at the end."""
    return direction if key is None else f"{direction}{-key[0]}:{key[1]}"


def _parse_token(token: str) -> tuple[str, _Key | None]:
    direction, rest = token[:1], token[1:]
    if direction not in ("n", "p"):
        raise invalid_param("Unknown pagination token")
    if not rest:
        return direction, None
    count, _, room_id = rest.partition(":")
    if not count.isascii() or not count.isdigit() or not room_id.startswith("!"):
        raise invalid_param("Unknown pagination token")
    return direction, (-int(count), room_id)


class RemoteAliases(Protocol):
    async def alias(self, alias: str) -> dict[str, Any]: ...

    async def public_rooms(self, query: PublicRoomsQuery) -> dict[str, Any]: ...


class DirectoryService:
    def __init__(self, timeline: Timeline, state: StateStore, aliases: AliasStore,
                 store: DirectoryStore, server_name: str) -> None:
        self._timeline = timeline
        self._state = state
        self._aliases = aliases
        self._store = store
        self._server_name = server_name
        # Set by the federation layer: aliases of other servers.
        self.remote: RemoteAliases | None = None

    # -- room aliases --

    def _local_alias(self, text: str) -> RoomAlias:
        alias = RoomAlias.parse(text)
        if alias.domain != self._server_name:
            raise invalid_param(f"Room alias {text!r} is not on this server")
        return alias

    async def create_alias(self, requester: Requester, alias_text: str, room_id: str) -> None:
        alias = str(self._local_alias(alias_text))
        if not room_id.startswith("!"):
            raise invalid_param(f"Invalid room ID: {room_id!r}")
        if requester.is_guest:
            raise guest_forbidden()
        if requester.is_admin:
            if await self._store.is_public(room_id) is None:
                raise not_found("Room not found")
        elif not await self._is_joined(room_id, requester.user_id):
            raise forbidden("You must be in the room to create an alias for it")
        try:
            await self._aliases.insert_alias(alias, room_id, requester.user_id,
                                             int(time.time() * 1000))
        except AliasExistsError:
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists") from None

    async def resolve_alias(self, alias_text: str) -> dict[str, Any]:
        alias = RoomAlias.parse(alias_text)
        if alias.domain != self._server_name:
            if self.remote is None:
                raise not_found(f"Room alias {alias} not found (federation is off)")
            return await self.remote.alias(str(alias))
        room_id = await self._aliases.get_room_id(str(alias))
        if room_id is None:
            raise not_found(f"Room alias {alias} not found")
        servers = {user.split(":", 1)[1] for user in await self._store.joined_members(room_id)
                   if ":" in user}
        servers.discard(self._server_name)
        return {"room_id": room_id, "servers": [self._server_name, *sorted(servers)]}

    async def delete_alias(self, requester: Requester, alias_text: str) -> None:
        alias = str(self._local_alias(alias_text))
        if requester.is_guest:
            raise guest_forbidden()
        mapping = await self._aliases.get_alias(alias)
        if mapping is None:
            raise not_found(f"Room alias {alias} not found")
        room_id, creator = mapping
        if creator != requester.user_id and not await self._may_moderate(requester, room_id):
            raise forbidden("You don't have permission to delete the alias")
        if not await self._aliases.delete_alias(alias):
            raise not_found(f"Room alias {alias} not found")  # deleted meanwhile
        await self._drop_from_canonical_alias(requester.user_id, room_id, alias)

    async def _drop_from_canonical_alias(self, user_id: str, room_id: str, alias: str) -> None:
        """The spec's note on DELETE: the server may remove the alias from the room's
        m.room.canonical_alias. Done as the requester; if they lack the power, the event stays
        and the deletion still succeeds (as the spec recommends)."""
        event = await self._canonical_alias_event(room_id)
        if event is None:
            return
        content = dict(event.content)
        changed = False
        if content.get("alias") == alias:
            del content["alias"]
            changed = True
        alt = content.get("alt_aliases")
        if isinstance(alt, list) and alias in alt:
            remaining = [a for a in alt if a != alias]
            if remaining:
                content["alt_aliases"] = remaining
            else:
                del content["alt_aliases"]
            changed = True
        if not changed:
            return
        try:
            await self._timeline.append(room_id, user_id, "m.room.canonical_alias", content,
                                        state_key="")
        except MatrixError as e:
            log.info("alias %s deleted but not removed from %s's canonical alias: %s",
                     alias, room_id, e.message)

    async def local_aliases(self, requester: Requester, room_id: str) -> list[str]:
        if requester.is_guest:
            raise guest_forbidden()
        if not requester.is_admin and not await self._is_joined(room_id, requester.user_id) \
                and not await self._is_world_readable(room_id):
            raise forbidden("You are not in this room")
        return await self._aliases.list_aliases(room_id)

    async def check_canonical_alias(self, room_id: str, content: Mapping[str, Any]) -> None:
        """Before a client's m.room.canonical_alias is sent (client-server API, PUT
        /rooms/{roomId}/state): M_INVALID_PARAM for aliases with bad syntax, M_BAD_ALIAS for
        aliases of this server that do not point at ``room_id``.

        As Synapse does, only aliases the room does not already advertise are checked: an alias
        deleted or moved since it was added must not stop the room from editing the others.
        """
        alias = content.get("alias")
        if alias is not None and not isinstance(alias, str):
            raise invalid_param("'alias' must be a string")
        alt_aliases = content.get("alt_aliases")
        if alt_aliases is None:
            alt_aliases = []
        if not isinstance(alt_aliases, list) \
                or not all(isinstance(a, str) for a in alt_aliases):
            raise invalid_param("'alt_aliases' must be a list of strings")
        advertised: set[str] = set()
        current = await self._canonical_alias_event(room_id)
        if current is not None:
            old_alias, old_alt = current.content.get("alias"), current.content.get("alt_aliases")
            if isinstance(old_alias, str):
                advertised.add(old_alias)
            if isinstance(old_alt, list):
                advertised.update(a for a in old_alt if isinstance(a, str))
        added = [a for a in dict.fromkeys([*([alias] if alias else []), *alt_aliases])
                 if a not in advertised]
        for text in added:
            parsed = RoomAlias.parse(text)
            if parsed.domain != self._server_name:
                continue  # another server's alias: nothing here to check it against
            if await self._aliases.get_room_id(text) != room_id:
                raise MatrixError(400, "M_BAD_ALIAS",
                                  f"The alias {text!r} does not point to this room")

    # -- published room directory --

    async def get_visibility(self, room_id: str) -> str:
        public = await self._store.is_public(room_id)
        if public is None:
            raise not_found("Room not found")
        return "public" if public else "private"

    async def set_visibility(self, requester: Requester, room_id: str, visibility: str) -> None:
        if visibility not in ("public", "private"):
            raise invalid_param("visibility must be 'public' or 'private'")
        if requester.is_guest:
            raise MatrixError(403, "M_FORBIDDEN", "Guests cannot edit the published room list")
        if await self._store.is_public(room_id) is None:
            raise not_found("Room not found")
        if not await self._may_moderate(requester, room_id):
            raise forbidden("You need the power to change the room's canonical alias to edit "
                            "its room directory entry")
        await self._store.set_public(room_id, visibility == "public")

    async def publish(self, room_id: str) -> None:
        """List a room in the directory with no permission check (``createRoom`` with
        ``visibility: public``, where the creator has every power)."""
        await self._store.set_public(room_id, True)

    async def unpublish(self, room_id: str) -> None:
        """Take a room out of the directory with no permission check (e.g. the old room of an
        upgrade, whose listing moves to the new room)."""
        await self._store.set_public(room_id, False)

    async def public_rooms(self, query: PublicRoomsQuery) -> dict[str, Any]:
        if query.server is not None and query.server != self._server_name:
            if not is_valid_server_name(query.server):
                raise invalid_param(f"Invalid server name: {query.server!r}")
            if self.remote is None:
                raise MatrixError(502, "M_UNKNOWN", "Failed to fetch room list: federation "
                                  "is off on this server")
            return await self.remote.public_rooms(query)
        if query.include_all_networks and query.third_party_instance_id is not None:
            raise invalid_param("Can't use include_all_networks with an explicit network")
        if query.limit is not None and query.limit < 0:
            raise invalid_param("limit must not be negative")
        if query.third_party_instance_id is not None:
            # Only application services publish rooms to a third-party network's list, and
            # there are none here: that list is empty.
            return {"chunk": [], "total_room_count_estimate": 0}
        direction, since = ("n", None) if query.since is None else _parse_token(query.since)
        rooms = await self._store.public_rooms()
        keys = sorted((-joined, room_id) for room_id, joined in rooms.items())
        limit = query.limit or None  # 0 means no limit, as in Synapse
        lister = _Lister(self, keys, query)
        if direction == "n":
            start = 0 if since is None else bisect.bisect_right(keys, since)
            chunk, more = await lister.walk(range(start, len(keys)), limit)
            before = await lister.any_match(range(start - 1, -1, -1))
            next_key, prev_key = (chunk[-1] if more else None), (chunk[0] if chunk else None)
            has_next, has_prev = more, before
        else:
            end = len(keys) if since is None else bisect.bisect_left(keys, since)
            chunk, more = await lister.walk(range(end - 1, -1, -1), limit)
            chunk.reverse()
            after = await lister.any_match(range(end, len(keys)))
            next_key, prev_key = (chunk[-1] if chunk else None), (chunk[0] if more else None)
            has_next, has_prev = after, more
        response: dict[str, Any] = {
            "chunk": [await lister.entry(key) for key in chunk],
            "total_room_count_estimate": len(keys),
        }
        if has_next:
            response["next_batch"] = _key_token("n", next_key)
        if has_prev:
            response["prev_batch"] = _key_token("p", prev_key)
        return response

    async def room_entry(self, room_id: str, joined: int) -> dict[str, Any]:
        """A room's ``PublishedRoomsChunk``, from its current state."""
        state_ids = await self._store.directory_state(room_id)
        pdus = await self._timeline.get_pdus(list(state_ids.values()))
        state = {key: pdus[event_id] for key, event_id in state_ids.items() if event_id in pdus}

        def text(event_type: str, field: str) -> str | None:
            event = state.get((event_type, ""))
            value = event.content.get(field) if event is not None else None
            return value if isinstance(value, str) and value else None

        entry: dict[str, Any] = {
            "room_id": room_id,
            "num_joined_members": joined,
            "world_readable": text("m.room.history_visibility", "history_visibility")
            == "world_readable",
            "guest_can_join": text("m.room.guest_access", "guest_access") == "can_join",
        }
        optional = {
            "name": text("m.room.name", "name"),
            "topic": text("m.room.topic", "topic"),
            "canonical_alias": text("m.room.canonical_alias", "alias"),
            "avatar_url": text("m.room.avatar", "url"),
            "join_rule": text("m.room.join_rules", "join_rule"),
            "room_type": text("m.room.create", "type"),
        }
        entry.update({k: v for k, v in optional.items() if v is not None})
        return entry

    # -- permissions --

    async def _is_joined(self, room_id: str, user_id: str) -> bool:
        membership = await self._state.get_membership(room_id, user_id)
        return membership is not None and membership[0] == "join"

    async def _is_world_readable(self, room_id: str) -> bool:
        event_id = await self._state.get_current_state_event_id(room_id, HISTORY_VISIBILITY)
        if event_id is None:
            return False
        event = (await self._timeline.get_pdus([event_id])).get(event_id)
        return event is not None and \
            event.content.get("history_visibility") == "world_readable"

    async def _may_moderate(self, requester: Requester, room_id: str) -> bool:
        """Synapse's "can change the room list": a server admin, or a joined member whose
        power level would let them send m.room.canonical_alias."""
        if requester.is_admin:
            return True
        if not await self._is_joined(room_id, requester.user_id):
            raise forbidden("You are not in this room")
        room = await self._timeline.room(room_id)
        if room is None:
            return False
        state = await self._timeline.state_events(room, [CREATE, POWER_LEVELS])
        levels = PowerLevels.from_state(state, room.room_version)
        return levels.user_level(requester.user_id) >= \
            levels.required_level(CANONICAL_ALIAS[0], is_state=True)

    async def _canonical_alias_event(self, room_id: str) -> PDU | None:
        event_id = await self._state.get_current_state_event_id(room_id, CANONICAL_ALIAS)
        if event_id is None:
            return None
        return (await self._timeline.get_pdus([event_id])).get(event_id)


class _Lister:
    """Walks the directory's order for one request, building (and caching) entries as needed
    and applying the request's filter."""

    def __init__(self, service: DirectoryService, keys: list[_Key],
                 query: PublicRoomsQuery) -> None:
        self._service = service
        self._keys = keys
        term = (query.search_term or "").strip()
        self._term = term.casefold() if term else None
        self._room_types = set(query.room_types) if query.room_types else None
        self._entries: dict[str, dict[str, Any]] = {}

    async def entry(self, key: _Key) -> dict[str, Any]:
        room_id = key[1]
        entry = self._entries.get(room_id)
        if entry is None:
            entry = self._entries[room_id] = await self._service.room_entry(room_id, -key[0])
        return entry

    async def _matches(self, key: _Key) -> bool:
        if self._room_types is None and self._term is None:
            return True
        entry = await self.entry(key)
        if self._room_types is not None and entry.get("room_type") not in self._room_types:
            return False
        if self._term is not None:
            fields = (entry.get("name"), entry.get("topic"), entry.get("canonical_alias"))
            return any(self._term in f.casefold() for f in fields if f)
        return True

    async def walk(self, indexes: range, limit: int | None) -> tuple[list[_Key], bool]:
        """Up to ``limit`` matching rooms in ``indexes`` order, and whether more match."""
        found: list[_Key] = []
        for i in indexes:
            key = self._keys[i]
            if not await self._matches(key):
                continue
            if limit is not None and len(found) == limit:
                return found, True
            found.append(key)
        return found, False

    async def any_match(self, indexes: range) -> bool:
        for i in indexes:
            if await self._matches(self._keys[i]):
                return True
        return False
