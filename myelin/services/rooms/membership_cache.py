"""Room memberships kept in memory between changes: who is joined to a room, and which rooms
a user is in.

Every event sent is evaluated for push (its local recipients) and queued for federation (the
servers of its members), and every long-poll /sync that wakes reads its user's rooms: reads
of lists that change only when a membership does. The timeline marks each membership change
with the stream position it was allocated, by room and by user
(``Timeline.membership_changes``), before writing it, so a list read while the stream was at
position P stays right until a change after P is marked. A change still being written when
the list is read is marked after P: that entry is simply read again next time, once the
change has committed. Forgetting a room is not a stream event: it bumps the user's
generation instead, which a read in flight also notices.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from myelin.services.stream_changes import StreamChanges
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.state import StateStore

MAX_ENTRIES = 5_000  # per cache; the least recently used are dropped past this

V = TypeVar("V")
UserMembership = tuple[str, str, str, int]  # (room_id, membership, event_id, stream_ordering)


def user_key(user_id: str) -> Hashable:
    """The ``membership_changes`` key of one user's memberships (room IDs key the rooms)."""
    return ("user", user_id)


class _Entries(Generic[V]):
    """Values by key, each with the stream position it was read at, least recent first."""

    def __init__(self, changes: StreamChanges, max_entries: int) -> None:
        self._changes = changes
        self._max = max_entries
        self.values: OrderedDict[Hashable, tuple[int, V]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        cached = self.values.get(key)
        if cached is None or self._changes.changed_after(cached[0], key):
            return None
        self.values.move_to_end(key)
        return cached[1]

    def put(self, key: Hashable, read_at: int, value: V) -> None:
        self.values[key] = (read_at, value)
        self.values.move_to_end(key)
        while len(self.values) > self._max:
            self.values.popitem(last=False)


class JoinedMembers:
    """Each room's joined members, and the local ones among them (push evaluation's
    recipients), split once per membership change rather than once per event."""

    def __init__(self, state: StateStore, stream: StreamPositions,
                 membership_changes: StreamChanges, server_name: str = "",
                 max_rooms: int = MAX_ENTRIES) -> None:
        self._state = state
        self._stream = stream
        self._server_name = server_name
        self._rooms: _Entries[tuple[tuple[str, ...], tuple[str, ...]]] = _Entries(
            membership_changes, max_rooms)

    async def get(self, room_id: str) -> tuple[str, ...]:
        """The user IDs joined to ``room_id`` now (local and remote)."""
        return (await self._entry(room_id))[0]

    async def local(self, room_id: str) -> tuple[str, ...]:
        """The joined members of this server (``server_name`` given at construction)."""
        return (await self._entry(room_id))[1]

    async def _entry(self, room_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        cached = self._rooms.get(room_id)
        if cached is not None:
            return cached
        read_at = self._stream.current  # before the query: a later change invalidates it
        members = tuple(await self._state.joined_members(room_id))
        entry = (members, tuple(u for u in members
                                if u.partition(":")[2] == self._server_name))
        self._rooms.put(room_id, read_at, entry)
        return entry


class UserMemberships:
    def __init__(self, state: StateStore, stream: StreamPositions,
                 membership_changes: StreamChanges, max_users: int = MAX_ENTRIES) -> None:
        self._state = state
        self._stream = stream
        # (generation, memberships) by user_key
        self._users: _Entries[tuple[int, tuple[UserMembership, ...]]] = _Entries(
            membership_changes, max_users)
        self._generations: dict[str, int] = {}

    async def get(self, user_id: str) -> tuple[UserMembership, ...]:
        """(room_id, membership, event_id, stream_ordering) of every room the user has a
        current membership in, forgotten rooms left out (``StateStore.get_user_memberships``)."""
        key = user_key(user_id)
        generation = self._generations.get(user_id, 0)
        cached = self._users.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        read_at = self._stream.current
        memberships = tuple(await self._state.get_user_memberships(user_id))
        if self._generations.get(user_id, 0) == generation:  # no forget while we read
            self._users.put(key, read_at, (generation, memberships))
        return memberships

    def forgot(self, user_id: str) -> None:
        """The user forgot a room (call after that write): read their memberships again."""
        self._generations[user_id] = self._generations.get(user_id, 0) + 1
