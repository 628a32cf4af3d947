"""Who is joined to a room, kept in memory between membership changes.

Every event sent is evaluated for push (its local recipients) and queued for federation (the
servers of its members): two reads of the same member list per event, which changes only
when a membership does. The timeline marks each membership change with the room and the
stream position it was allocated (``Timeline.membership_changes``) before writing it, so a
list read while the stream was at position P stays right until a change after P is marked.
A change still being written when the list is read is marked after P: that entry is simply
read again next time, once the change has committed.
"""

from __future__ import annotations

from collections import OrderedDict

from myelin.services.stream_changes import StreamChanges
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.state import StateStore

MAX_ROOMS = 5_000  # least recently used rooms are dropped past this


class JoinedMembers:
    def __init__(self, state: StateStore, stream: StreamPositions,
                 membership_changes: StreamChanges, max_rooms: int = MAX_ROOMS) -> None:
        self._state = state
        self._stream = stream
        self._changes = membership_changes
        self._max_rooms = max_rooms
        self._rooms: OrderedDict[str, tuple[int, tuple[str, ...]]] = OrderedDict()

    async def get(self, room_id: str) -> tuple[str, ...]:
        """The user IDs joined to ``room_id`` now (local and remote)."""
        cached = self._rooms.get(room_id)
        if cached is not None and not self._changes.changed_after(cached[0], room_id):
            self._rooms.move_to_end(room_id)
            return cached[1]
        read_at = self._stream.current  # before the query: a later change invalidates it
        members = tuple(await self._state.joined_members(room_id))
        self._rooms[room_id] = (read_at, members)
        self._rooms.move_to_end(room_id)
        while len(self._rooms) > self._max_rooms:
            self._rooms.popitem(last=False)
        return members
