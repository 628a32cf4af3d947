"""Typing notifications (client-server API, "Typing Notifications"; server-server API,
"Typing Notifications").

Kept in memory only: a restart simply forgets who was typing. Each change takes a position in
the in-memory ephemeral stream (services/ephemeral.py), the second part of a sync token.

Local users' changes are reported to ``on_change`` listeners (the federation EDU relay), so
this module needs no federation code. A local user still typing is reported again every
``PING_INTERVAL_S``, because other servers forget a remote typer after their own timeout
(Synapse: 60 s, renewed by pings every 40 s, which we match). Typers on other servers arrive
through ``set_remote_typing`` and expire here after ``REMOTE_TIMEOUT_S`` unless renewed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from myelin.errors import forbidden
from myelin.services.ephemeral import EphemeralStream
from myelin.services.notifier import Notifier
from myelin.storage.stores.state import StateStore

log = logging.getLogger("myelin.typing")

MAX_TIMEOUT_MS = 120_000
DEFAULT_TIMEOUT_MS = 30_000
# How long a typing notification from another server lasts without a renewal, and how often
# we renew our own users' (Synapse's FEDERATION_TIMEOUT and FEDERATION_PING_INTERVAL).
REMOTE_TIMEOUT_S = 60.0
PING_INTERVAL_S = 40.0

# (room_id, user_id, typing): called synchronously; must only schedule work, never block.
TypingListener = Callable[[str, str, bool], None]


class TypingService:
    def __init__(self, state: StateStore, notifier: Notifier, stream: EphemeralStream) -> None:
        self._state = state
        self._notifier = notifier
        self._stream = stream
        self._typing: dict[str, dict[str, float]] = {}  # room -> user -> expiry (monotonic)
        self._changed_at: dict[str, int] = {}  # room -> typing position of its last change
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._pings: dict[tuple[str, str], asyncio.TimerHandle] = {}  # local typers only
        # Listeners hearing about local users' typing changes (and renewals), e.g. federation.
        self.on_change: list[TypingListener] = []

    async def set_typing(self, requester: str, user_id: str, room_id: str, typing: bool,
                         timeout_ms: int | None) -> None:
        if requester != user_id:
            raise forbidden("Cannot set the typing state of another user")
        membership = await self._state.get_membership(room_id, user_id)
        if membership is None or membership[0] != "join":
            raise forbidden("You are not in this room")
        key = (room_id, user_id)
        timeout = min(max(timeout_ms or DEFAULT_TIMEOUT_MS, 0), MAX_TIMEOUT_MS) / 1000
        if not self._apply(room_id, user_id, typing, timeout):
            return
        ping = self._pings.pop(key, None)
        if ping is not None:
            ping.cancel()
        if typing:
            self._pings[key] = asyncio.get_running_loop().call_later(
                PING_INTERVAL_S, self._ping, room_id, user_id)
        self._tell_listeners(room_id, user_id, typing)

    async def set_remote_typing(self, room_id: str, user_id: str, typing: bool) -> None:
        """A typing EDU from another server, already checked (origin owns the user, the user
        is joined here, the room's ACL allows the origin): shown like a local typer, and
        forgotten after ``REMOTE_TIMEOUT_S`` unless renewed."""
        self._apply(room_id, user_id, typing, REMOTE_TIMEOUT_S)

    def _apply(self, room_id: str, user_id: str, typing: bool, timeout_s: float) -> bool:
        """Record the new state; True if others have something to learn (started or
        stopped, not merely still typing)."""
        users = self._typing.setdefault(room_id, {})
        key = (room_id, user_id)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if typing:
            already = user_id in users
            users[user_id] = time.monotonic() + timeout_s
            self._timers[key] = asyncio.get_running_loop().call_later(
                timeout_s, self._expire, room_id, user_id)
            if already:
                return False  # still typing: nothing for others to learn
        elif users.pop(user_id, None) is None:
            if not users:
                self._typing.pop(room_id, None)
            return False
        self._changed(room_id)
        return True

    def _expire(self, room_id: str, user_id: str) -> None:
        self._timers.pop((room_id, user_id), None)
        ping = self._pings.pop((room_id, user_id), None)
        if self._typing.get(room_id, {}).pop(user_id, None) is not None:
            self._changed(room_id)
            if ping is not None:  # a local typer: other servers must hear it stopped
                ping.cancel()
                self._tell_listeners(room_id, user_id, False)

    def _ping(self, room_id: str, user_id: str) -> None:
        """Renew a local typer on other servers before their timeout forgets it."""
        if user_id not in self._typing.get(room_id, {}):
            self._pings.pop((room_id, user_id), None)
            return
        self._pings[(room_id, user_id)] = asyncio.get_running_loop().call_later(
            PING_INTERVAL_S, self._ping, room_id, user_id)
        self._tell_listeners(room_id, user_id, True)

    def _tell_listeners(self, room_id: str, user_id: str, typing: bool) -> None:
        for listener in self.on_change:
            try:
                listener(room_id, user_id, typing)
            except Exception:  # a listener's bug must not break typing for local clients
                log.exception("typing listener failed")

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
        for timer in [*self._timers.values(), *self._pings.values()]:
            timer.cancel()
        self._timers.clear()
        self._pings.clear()
