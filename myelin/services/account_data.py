"""Client account data (client-server API, module "Client Config"): per-user JSON blobs by
type, global or per room, delivered through /sync."""

from __future__ import annotations

from typing import Any

from myelin.errors import MatrixError, forbidden, not_found
from myelin.services.notifier import Notifier
from myelin.services.stream_changes import StreamChanges
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.account_data import GLOBAL, AccountDataStore

# "Servers MUST reject setting account data for event types that the server manages."
SERVER_MANAGED = ("m.fully_read", "m.push_rules")


class AccountDataService:
    def __init__(self, store: AccountDataStore, stream: StreamPositions,
                 notifier: Notifier) -> None:
        self._store = store
        self._stream = stream
        self._notifier = notifier
        self._changes = StreamChanges(stream.current)  # per user: a sync with nothing new
        # reads nothing

    async def put(self, requester_id: str, owner_id: str, room_id: str | None, data_type: str,
                  content: dict[str, Any]) -> None:
        if requester_id != owner_id:
            raise forbidden("Cannot set account data for other users")
        if data_type in SERVER_MANAGED:
            raise MatrixError(405, "M_BAD_JSON", f"Cannot set {data_type} through this API.")
        await self.put_managed(owner_id, room_id, data_type, content)

    async def put_managed(self, user_id: str, room_id: str | None, data_type: str,
                          content: dict[str, Any]) -> None:
        """Write without the client-side checks (for types the server itself manages)."""
        position = self._stream.allocate()
        self._changes.mark(position, user_id)
        try:
            await self._store.upsert(user_id, room_id or GLOBAL, data_type, content, position)
        finally:
            self._stream.finish(position)
        self._notifier.announce(self._stream.current, users=[user_id])

    async def get(self, requester_id: str, owner_id: str, room_id: str | None,
                  data_type: str) -> dict[str, Any]:
        if requester_id != owner_id:
            raise forbidden("Cannot read account data of other users")
        content = await self._store.get(owner_id, room_id or GLOBAL, data_type)
        if content is None:
            raise not_found("Account data not found")
        return content

    async def changes(self, user_id: str, since: int | None,
                      upto: int) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """(global events, per-room events) written after ``since`` (all of them when None)."""
        global_events: list[dict[str, Any]] = []
        by_room: dict[str, list[dict[str, Any]]] = {}
        if since is not None and not self._changes.changed_after(since, user_id):
            return global_events, by_room
        for room_id, data_type, content in await self._store.list_changed(
                user_id, since if since is not None else -1, upto):
            event = {"type": data_type, "content": content}
            if room_id == GLOBAL:
                global_events.append(event)
            else:
                by_room.setdefault(room_id, []).append(event)
        return global_events, by_room
