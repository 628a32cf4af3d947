"""Presence (client-server API, module "Presence"), kept cheap on purpose.

Synapse's presence is its best-known CPU sink; here it is a dict in memory: an update is a
dict write plus a notifier wake-up, a /sync asks only about users whose presence changed since
its token, and one sweep every few seconds turns silent users ``unavailable`` (idle) or
``offline`` (no sync). A restart forgets presence, which clients re-establish on their next
sync. Presence goes only to users who share a room with the subject, and can be switched off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from myelin.config import PresenceConfig
from myelin.errors import MatrixError, forbidden, invalid_param, not_found
from myelin.services.ephemeral import EphemeralStream
from myelin.services.notifier import Notifier
from myelin.storage.stores.state import StateStore

STATES = ("online", "unavailable", "offline")
SWEEP_INTERVAL_S = 5.0


@dataclass
class UserPresence:
    presence: str = "offline"
    status_msg: str | None = None
    last_active: float = 0.0  # time.time() of the last activity
    last_sync: float = 0.0  # time.monotonic() of the last sync that kept the user online
    changed_at: int = 0  # ephemeral stream position of the last change


class PresenceService:
    def __init__(self, config: PresenceConfig, state: StateStore, notifier: Notifier,
                 stream: EphemeralStream, server_name: str) -> None:
        self.enabled = config.enabled
        self._config = config
        self._state = state
        self._notifier = notifier
        self._stream = stream
        self._server_name = server_name
        self._users: dict[str, UserPresence] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle --

    def start(self) -> None:
        if self.enabled and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    # -- updates --

    async def set_status(self, requester: str, user_id: str, presence: str,
                         status_msg: str | None) -> None:
        """PUT /presence/{userId}/status."""
        if requester != user_id:
            raise forbidden("Cannot set the presence of another user")
        if presence not in STATES:
            raise invalid_param(f"presence must be one of {', '.join(STATES)}")
        if not self.enabled:
            return
        entry = self._users.setdefault(user_id, UserPresence())
        if presence == "online":
            entry.last_active = time.time()
            entry.last_sync = time.monotonic()
        await self._update(user_id, entry, presence, status_msg)

    async def on_sync(self, user_id: str, set_presence: str) -> None:
        """A /sync with ``set_presence``: online (the default) marks the user active."""
        if not self.enabled or set_presence == "offline":
            return
        entry = self._users.setdefault(user_id, UserPresence())
        entry.last_sync = time.monotonic()
        if set_presence == "online":
            entry.last_active = time.time()
        if entry.presence != set_presence:
            await self._update(user_id, entry, set_presence, entry.status_msg)

    async def _update(self, user_id: str, entry: UserPresence, presence: str,
                      status_msg: str | None) -> None:
        if entry.presence == presence and entry.status_msg == status_msg and entry.changed_at:
            return
        entry.presence, entry.status_msg = presence, status_msg
        entry.changed_at = self._stream.advance()
        rooms = [r for r, m, _, _ in await self._state.get_user_memberships(user_id)
                 if m == "join"]
        self._notifier.announce_ephemeral(rooms=rooms, users=[user_id])

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            await self.sweep()

    async def sweep(self) -> None:
        """Idle users become ``unavailable``, users no client syncs for become ``offline``."""
        now_wall, now_mono = time.time(), time.monotonic()
        for user_id, entry in list(self._users.items()):
            if entry.presence == "offline":
                continue
            if now_mono - entry.last_sync > self._config.offline_after_s:
                await self._update(user_id, entry, "offline", entry.status_msg)
            elif entry.presence == "online" and \
                    now_wall - entry.last_active > self._config.idle_after_s:
                await self._update(user_id, entry, "unavailable", entry.status_msg)

    # -- reading --

    def _content(self, entry: UserPresence) -> dict[str, Any]:
        content: dict[str, Any] = {"presence": entry.presence}
        if entry.last_active:
            content["last_active_ago"] = max(0, int((time.time() - entry.last_active) * 1000))
        if entry.presence == "online":
            content["currently_active"] = time.time() - entry.last_active < 60
        if entry.status_msg is not None:
            content["status_msg"] = entry.status_msg
        return content

    async def _share_a_room(self, a: str, b: str) -> bool:
        if a == b:
            return True
        rooms_a = {r for r, m, _, _ in await self._state.get_user_memberships(a) if m == "join"}
        if not rooms_a:
            return False
        return any(r in rooms_a and m == "join"
                   for r, m, _, _ in await self._state.get_user_memberships(b))

    async def get_status(self, requester: str, user_id: str) -> dict[str, Any]:
        """GET /presence/{userId}/status."""
        if not user_id.endswith(":" + self._server_name):
            raise not_found("Presence of remote users is not available")
        if not await self._share_a_room(requester, user_id):
            raise forbidden("You do not share a room with this user")
        entry = self._users.get(user_id)
        if entry is None:
            if not self.enabled:
                raise MatrixError(404, "M_NOT_FOUND", "Presence is disabled on this server")
            return {"presence": "offline"}
        return self._content(entry)

    async def events_for(self, user_id: str, since: int | None) -> list[dict[str, Any]]:
        """m.presence events for /sync: users sharing a room with ``user_id`` whose presence
        changed after ``since`` (everyone known, on an initial sync)."""
        if not self.enabled:
            return []
        events = []
        for subject, entry in self._users.items():
            if since is not None and entry.changed_at <= since:
                continue
            if await self._share_a_room(user_id, subject):
                events.append({"type": "m.presence", "sender": subject,
                               "content": self._content(entry)})
        return events
