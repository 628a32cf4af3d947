"""Wakes long-polling /sync requests when something they care about happens.

Every cross-component signal goes through here (design: "Single process first, with every
cross-component signal going through the notifier"). A waiter says which rooms and which user
it listens for; a new event wakes only the waiters of its room (plus, for membership changes,
the target user, who may not be in the room yet). Waking is a dict lookup and a future
resolution per waiter: no polling, no scan of all waiters per event.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable


class _Waiter:
    __slots__ = ("future", "rooms", "user_id")

    def __init__(self, user_id: str, rooms: frozenset[str]) -> None:
        self.user_id = user_id
        self.rooms = rooms
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Notifier:
    def __init__(self) -> None:
        self._by_room: dict[str, set[_Waiter]] = defaultdict(set)
        self._by_user: dict[str, set[_Waiter]] = defaultdict(set)
        self.position = 0  # the newest stream position announced
        self.closed = False

    async def wait(self, user_id: str, rooms: Iterable[str], since: int,
                   timeout_s: float) -> bool:
        """Wait until something for ``user_id`` or ``rooms`` is announced after ``since``.

        Returns at once if the stream already moved past ``since`` (the caller then looks for
        what is new); False when the timeout ran out with nothing new.
        """
        if self.closed:
            return False
        if self.position > since:
            return True
        waiter = _Waiter(user_id, frozenset(rooms))
        for room in waiter.rooms:
            self._by_room[room].add(waiter)
        self._by_user[user_id].add(waiter)
        try:
            await asyncio.wait_for(waiter.future, timeout_s)
            return not self.closed
        except TimeoutError:
            return False
        finally:
            self._remove(waiter)

    def _remove(self, waiter: _Waiter) -> None:
        for room in waiter.rooms:
            listeners = self._by_room.get(room)
            if listeners is not None:
                listeners.discard(waiter)
                if not listeners:
                    del self._by_room[room]
        listeners = self._by_user.get(waiter.user_id)
        if listeners is not None:
            listeners.discard(waiter)
            if not listeners:
                del self._by_user[waiter.user_id]

    def announce(self, position: int, *, rooms: Iterable[str] = (),
                 users: Iterable[str] = ()) -> None:
        """Stream ``position`` is readable; wake whoever listens to ``rooms`` or ``users``."""
        self.position = max(self.position, position)
        woken: set[_Waiter] = set()
        for room in rooms:
            woken.update(self._by_room.get(room, ()))
        for user in users:
            woken.update(self._by_user.get(user, ()))
        for waiter in woken:
            if not waiter.future.done():
                waiter.future.set_result(None)

    def announce_ephemeral(self, *, rooms: Iterable[str] = (),
                           users: Iterable[str] = ()) -> None:
        """Something not in the durable stream (typing) changed: wake without moving it."""
        self.announce(self.position, rooms=rooms, users=users)

    def wake_all(self) -> None:
        """Shutdown: let every long-poll return now instead of holding the server open."""
        self.closed = True
        for listeners in list(self._by_user.values()):
            for waiter in listeners:
                if not waiter.future.done():
                    waiter.future.set_result(None)

    @property
    def waiting(self) -> int:
        return sum(len(v) for v in self._by_user.values())
