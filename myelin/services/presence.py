"""Presence (client-server API, module "Presence"), kept cheap on purpose.

Synapse's presence is its best-known CPU sink; here it is a dict in memory: an update is a
dict write plus a notifier wake-up, a /sync asks only about users whose presence changed since
its token, and one sweep every few seconds turns silent users ``unavailable`` (idle) or
``offline`` (no sync). A restart forgets presence, which clients re-establish on their next
sync. Presence goes only to users who share a room with the subject, and can be switched off.

Local users' changes are reported to ``on_change`` listeners (the federation EDU relay), and
repeated every ``PING_INTERVAL_S`` while the user is not offline, because other servers
forget a remote user's presence after a while (Synapse: 30 min, renewed every 25 min, which
we match). Users of other servers arrive through ``set_remote``, are kept in the same dict
(never swept as idle: their server decides that) and turn offline after
``REMOTE_TIMEOUT_S`` without news.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from myelin.config import PresenceConfig
from myelin.errors import MatrixError, forbidden, invalid_param, not_found
from myelin.services.ephemeral import EphemeralStream
from myelin.services.notifier import Notifier
from myelin.services.rooms.membership_cache import UserMemberships

log = logging.getLogger("myelin.presence")

STATES = ("online", "unavailable", "offline")
SWEEP_INTERVAL_S = 5.0
REMOTE_TIMEOUT_S = 30 * 60.0  # a remote user unheard of this long is taken to be offline
PING_INTERVAL_S = 25 * 60.0  # how often a local user's unchanged presence is re-announced

# Called synchronously with the ID of a local user whose presence changed (or is re-announced);
# must only schedule work, never block.
PresenceListener = Callable[[str], None]


@dataclass
class UserPresence:
    presence: str = "offline"
    status_msg: str | None = None
    last_active: float = 0.0  # time.time() of the last activity
    last_sync: float = 0.0  # time.monotonic() of the last sync that kept the user online
    changed_at: int = 0  # ephemeral stream position of the last change
    remote: bool = False  # a user of another server, known from its m.presence EDUs
    currently_active: bool = False  # remote users only: as their server said
    heard_at: float = 0.0  # time.monotonic() we last told other servers (local) or heard (remote)


class PresenceService:
    def __init__(self, config: PresenceConfig, memberships: UserMemberships, notifier: Notifier,
                 stream: EphemeralStream, server_name: str) -> None:
        self.enabled = config.enabled
        self._config = config
        self._memberships = memberships
        self._notifier = notifier
        self._stream = stream
        self._server_name = server_name
        self._users: dict[str, UserPresence] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # Listeners hearing about local users' presence changes, e.g. federation.
        self.on_change: list[PresenceListener] = []

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
                      status_msg: str | None, *, force: bool = False) -> None:
        if entry.presence == presence and entry.status_msg == status_msg and entry.changed_at \
                and not force:
            return
        entry.presence, entry.status_msg = presence, status_msg
        entry.changed_at = self._stream.advance()
        rooms = [r for r, m, _, _ in await self._memberships.get(user_id)
                 if m == "join"]
        self._notifier.announce_ephemeral(rooms=rooms, users=[user_id])
        if not entry.remote:
            self._tell_listeners(user_id, entry)

    def _tell_listeners(self, user_id: str, entry: UserPresence) -> None:
        entry.heard_at = time.monotonic()
        for listener in self.on_change:
            try:
                listener(user_id)
            except Exception:  # a listener's bug must not break presence for local clients
                log.exception("presence listener failed")

    async def set_remote(self, user_id: str, presence: str, last_active_ago: int,
                         currently_active: bool, status_msg: str | None) -> None:
        """One entry of another server's ``m.presence`` EDU, already checked (the origin owns
        the user, who shares a room with this server). Only a change of state, status or
        activity wakes clients; a mere newer ``last_active_ago`` is kept quietly."""
        if not self.enabled or presence not in STATES:
            return
        entry = self._users.get(user_id)
        if entry is None:
            entry = self._users[user_id] = UserPresence(remote=True)
        elif not entry.remote:
            return  # never let another server speak for a user of this one
        now = time.time()
        entry.last_active = max(0.0, now - max(0, last_active_ago) / 1000)
        if entry.last_active < 1.0:
            entry.last_active = 0.0  # "never": the sender's epoch-sized last_active_ago
        entry.heard_at = time.monotonic()
        active = currently_active and presence == "online"
        activity_changed = entry.currently_active != active
        entry.currently_active = active
        await self._update(user_id, entry, presence, status_msg, force=activity_changed)

    def federation_state(self, user_id: str) -> dict[str, Any] | None:
        """A local user's presence as an ``m.presence`` EDU ``push`` entry; None when
        presence is off or nothing is known of the user."""
        entry = self._users.get(user_id)
        if not self.enabled or entry is None or entry.remote:
            return None
        content = self._content(entry)
        state: dict[str, Any] = {
            "user_id": user_id, "presence": entry.presence,
            "last_active_ago": content.get("last_active_ago",
                                           int(time.time() * 1000)),  # never active
            "currently_active": bool(content.get("currently_active", False)),
        }
        if entry.status_msg is not None:
            state["status_msg"] = entry.status_msg
        return state

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            await self.sweep()

    async def sweep(self) -> None:
        """Idle users become ``unavailable``, users no client syncs for become ``offline``;
        remote users unheard of for ``REMOTE_TIMEOUT_S`` become ``offline``; local users
        other servers have not heard about for ``PING_INTERVAL_S`` are re-announced."""
        now_wall, now_mono = time.time(), time.monotonic()
        for user_id, entry in list(self._users.items()):
            if entry.presence == "offline":
                continue
            if entry.remote:
                if now_mono - entry.heard_at > REMOTE_TIMEOUT_S:
                    entry.currently_active = False
                    await self._update(user_id, entry, "offline", entry.status_msg)
                continue
            if now_mono - entry.last_sync > self._config.offline_after_s:
                await self._update(user_id, entry, "offline", entry.status_msg)
            elif entry.presence == "online" and \
                    now_wall - entry.last_active > self._config.idle_after_s:
                await self._update(user_id, entry, "unavailable", entry.status_msg)
            elif now_mono - entry.heard_at > PING_INTERVAL_S:
                self._tell_listeners(user_id, entry)

    # -- reading --

    def _content(self, entry: UserPresence) -> dict[str, Any]:
        content: dict[str, Any] = {"presence": entry.presence}
        if entry.last_active:
            content["last_active_ago"] = max(0, int((time.time() - entry.last_active) * 1000))
        if entry.presence == "online":
            content["currently_active"] = entry.currently_active if entry.remote else \
                time.time() - entry.last_active < 60
        if entry.status_msg is not None:
            content["status_msg"] = entry.status_msg
        return content

    async def _joined_rooms(self, user_id: str) -> set[str]:
        return {r for r, m, _, _ in await self._memberships.get(user_id) if m == "join"}

    async def _share_a_room(self, a: str, b: str, rooms_a: set[str] | None = None) -> bool:
        """``rooms_a``: ``a``'s joined rooms, when the caller has them already."""
        if a == b:
            return True
        if rooms_a is None:
            rooms_a = await self._joined_rooms(a)
        return bool(rooms_a) and any(r in rooms_a for r in await self._joined_rooms(b))

    async def get_status(self, requester: str, user_id: str) -> dict[str, Any]:
        """GET /presence/{userId}/status (users of other servers: as their last EDU said)."""
        entry = self._users.get(user_id)
        if not user_id.endswith(":" + self._server_name) and entry is None:
            raise not_found("Presence of this remote user is not known")
        if not await self._share_a_room(requester, user_id):
            raise forbidden("You do not share a room with this user")
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
        rooms: set[str] | None = None
        for subject, entry in list(self._users.items()):
            if since is not None and entry.changed_at <= since:
                continue
            if rooms is None:
                rooms = await self._joined_rooms(user_id)
            if await self._share_a_room(user_id, subject, rooms):
                events.append({"type": "m.presence", "sender": subject,
                               "content": self._content(entry)})
        return events
