"""Pushers and the notification list (client-server API, "Push Notifications", "Client
behaviour": ``/pushers``, ``/pushers/set`` and ``/notifications``).

Sending is :mod:`myelin.services.push_delivery`'s job; this module keeps the pushers and reads
back the notifications that module records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from myelin.errors import MatrixError, bad_json, invalid_param, missing_param
from myelin.services.receipts import ReceiptService
from myelin.services.rooms.client_format import GetPdus, serve_events
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.notifications import NotificationStore
from myelin.storage.stores.pushers import Pusher, PusherStore

NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_PUSHKEY_BYTES = 512
MAX_APP_ID_CHARS = 64
DEFAULT_NOTIFICATIONS_LIMIT = 20
MAX_NOTIFICATIONS_LIMIT = 1000

_REQUIRED = ("kind", "app_id", "app_display_name", "device_display_name", "pushkey", "lang",
             "data")
_STRINGS = ("app_id", "app_display_name", "device_display_name", "pushkey", "lang",
            "profile_tag")


def _check_body(body: Mapping[str, Any]) -> None:
    """``POST /pushers/set``: M_MISSING_PARAM naming every absent parameter, M_BAD_JSON for a
    parameter of the wrong type."""
    deleting = "kind" in body and body["kind"] is None
    needed = ("kind", "app_id", "pushkey") if deleting else _REQUIRED
    missing = [name for name in needed if name not in body]
    if missing:
        raise missing_param("Missing parameters: " + ", ".join(missing))
    for name in _STRINGS:
        if name in body and not isinstance(body[name], str):
            raise bad_json(f"'{name}' must be a string")
    if not (body["kind"] is None or isinstance(body["kind"], str)):
        raise bad_json("'kind' must be a string or null")
    if "data" in body and not isinstance(body["data"], dict):
        raise bad_json("'data' must be an object")
    if "append" in body and not isinstance(body["append"], bool):
        raise bad_json("'append' must be true or false")
    if len(body["pushkey"].encode()) > MAX_PUSHKEY_BYTES:
        raise invalid_param(f"'pushkey' is longer than {MAX_PUSHKEY_BYTES} bytes")
    if len(body["app_id"]) > MAX_APP_ID_CHARS:
        raise invalid_param(f"'app_id' is longer than {MAX_APP_ID_CHARS} characters")


def _check_http_data(data: Mapping[str, Any]) -> None:
    if "url" not in data:
        raise missing_param("'data.url' is required for HTTP pushers")
    url = data["url"]
    if not isinstance(url, str):
        raise bad_json("'data.url' must be a string")
    parts = urlsplit(url)
    # The spec wants HTTPS; like Synapse we leave that to the client and its gateway.
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path != NOTIFY_PATH:
        raise invalid_param(f"'data.url' must be an http(s) URL with the path {NOTIFY_PATH}")
    if "format" in data and not isinstance(data["format"], str):
        raise bad_json("'data.format' must be a string")


class PusherService:
    def __init__(self, store: PusherStore, stream: StreamPositions) -> None:
        self._store = store
        self._stream = stream

    async def list_for_user(self, user_id: str) -> list[dict[str, Any]]:
        return [p.to_json() for p in await self._store.list_for_user(user_id)]

    async def set_pusher(self, user_id: str, device_id: str | None,
                         body: Mapping[str, Any]) -> None:
        """``POST /pushers/set``: create, replace (same app ID and pushkey) or delete."""
        _check_body(body)
        kind = body["kind"]
        if kind is None:
            await self._store.delete(user_id, body["app_id"], body["pushkey"])
            return
        if kind == "email":
            # Email pushers mail an address bound to the account; no 3PID can be bound here.
            raise MatrixError(400, "M_THREEPID_NOT_FOUND",
                              "No email address is bound to this account")
        if kind != "http":
            raise invalid_param(f"Unsupported pusher kind {kind!r}")
        _check_http_data(body["data"])
        # Starts at the current stream position: a new or changed pusher gets only what
        # happens from now on, never a backlog.
        pusher = Pusher(
            user_id, body["app_id"], body["pushkey"], kind, body["app_display_name"],
            body["device_display_name"], body.get("profile_tag"), body["lang"],
            dict(body["data"]), device_id, int(time.time() * 1000), self._stream.current)
        await self._store.put(pusher, remove_other_users=not body.get("append", False))


class NotificationList:
    """``GET /notifications``: the events the user was notified about, newest first."""

    def __init__(self, store: NotificationStore, events: EventStore, get_pdus: GetPdus,
                 receipts: ReceiptService) -> None:
        self._store = store
        self._events = events
        self._get_pdus = get_pdus
        self._receipts = receipts

    async def page(self, user_id: str, device_id: str | None, from_token: str | None,
                   limit: int | None, only: str | None) -> dict[str, Any]:
        before = None
        if from_token is not None:
            try:
                before = int(from_token)
            except ValueError:
                raise invalid_param("Unknown 'from' token") from None
        if limit is None:
            limit = DEFAULT_NOTIFICATIONS_LIMIT
        if limit < 0:
            raise invalid_param("'limit' must not be negative")
        limit = min(limit, MAX_NOTIFICATIONS_LIMIT)
        rows = await self._store.newest_first(user_id, before, limit + 1,
                                              only_highlight=only == "highlight")
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1].stream_ordering if rows else None
        stored = await self._events.get_events([n.event_id for n in rows])
        rows = [n for n in rows if n.event_id in stored]
        served = await serve_events([stored[n.event_id] for n in rows],
                                    (user_id, device_id) if device_id else None, self._get_pdus)
        read_upto: dict[str, int] = {}
        for room_id in {n.room_id for n in rows}:
            read_upto[room_id] = await self._read_upto(user_id, room_id)
        notifications = []
        for row, event in zip(rows, served, strict=True):
            event.pop("room_id", None)  # ClientEventWithoutRoomID
            notifications.append({
                "actions": row.actions, "event": event, "room_id": row.room_id,
                "ts": row.ts, "read": row.stream_ordering <= read_upto[row.room_id],
            })
        out: dict[str, Any] = {"notifications": notifications}
        if more and last is not None:
            out["next_token"] = str(last)
        return out

    async def _read_upto(self, user_id: str, room_id: str) -> int:
        """The stream position of the user's read receipt in the room (-1: none)."""
        event_id = await self._receipts.latest_read(room_id, user_id)
        if event_id is None:
            return -1
        stored = (await self._events.get_events([event_id])).get(event_id)
        return stored.stream_ordering if stored is not None else -1
