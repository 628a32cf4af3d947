"""Typing notifications (client-server API, "Typing Notifications").

Kept in memory only: a restart simply forgets who was typing. Each change takes a position in
the in-memory ephemeral stream (services/ephemeral.py), the second part of a sync token.
"""

from __future__ import annotations

import asyncio
import time

from myelin.errors import forbidden
from myelin.services.ephemeral import EphemeralStream
from myelin.services.notifier import Notifier
from myelin.storage.stores.state import StateStore

MAX_TIMEOUT_MS = 120_000
DEFAULT_TIMEOUT_MS = 30_000


class TypingService:
    def __init__(self, state: StateStore, notifier: Notifier, stream: EphemeralStream) -> None:
        self._state = state
        self._notifier = notifier
        self._stream = stream
        self._typing: dict[str, dict[str, float]] = {}  # room -> user -> expiry (monotonic)
        self._changed_at: dict[str, int] = {}  # room -> typing position of its last change
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}

    async def set_typing(self, requester: str, user_id: str, room_id: str, typing: bool,
                         timeout_ms: int | None) -> None:
        if requester != user_id:
            raise forbidden("Cannot set the typing state of another user")
        membership = await self._state.get_membership(room_id, user_id)
        if membership is None or membership[0] != "join":
            raise forbidden("You are not in this room")
        users = self._typing.setdefault(room_id, {})
        key = (room_id, user_id)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if typing:
            timeout = min(max(timeout_ms or DEFAULT_TIMEOUT_MS, 0), MAX_TIMEOUT_MS) / 1000
            already = user_id in users
            users[user_id] = time.monotonic() + timeout
            self._timers[key] = asyncio.get_running_loop().call_later(
                timeout, self._expire, room_id, user_id)
            if already:
                return  # still typing: nothing for others to learn
        elif users.pop(user_id, None) is None:
            return
        self._changed(room_id)

    def _expire(self, room_id: str, user_id: str) -> None:
        self._timers.pop((room_id, user_id), None)
        if self._typing.get(room_id, {}).pop(user_id, None) is not None:
            self._changed(room_id)

    def _changed(self, room_id: str) -> None:
        self._changed_at[room_id] = self._stream.advance()
        if not self._typing.get(room_id):
            self._typing.pop(room_id, None)
        self._notifier.announce_ephemeral(rooms=[room_id])

    def ephemeral(self, room_ids: list[str], since: int | None) -> dict[str, dict[str, object]]:
        """An ``m.typing`` event for each room whose typers changed after ``since`` (every room
        with typers on an initial sync)."""
        out: dict[str, dict[str, object]] = {}
        for room_id in room_ids:
            changed = self._changed_at.get(room_id)
            if changed is None or (since is not None and changed <= since):
                continue
            users = sorted(self._typing.get(room_id, {}))
            if since is None and not users:
                continue
            out[room_id] = {"type": "m.typing", "content": {"user_ids": users}}
        return out

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
