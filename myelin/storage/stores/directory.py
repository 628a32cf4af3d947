"""The published room directory (column ``rooms.is_public``) and the room facts it lists.

Ordering is left to the caller: room IDs compare by code point in Python, while PostgreSQL's
``ORDER BY`` on TEXT follows the database's locale collation, and pagination tokens must agree
with one order on both engines.
"""

from __future__ import annotations

from myelin.core.events import StateKey
from myelin.storage.database import Database

# The state a published room's directory entry is built from (all with state_key "").
DIRECTORY_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
)
_TYPE_LIST = ", ".join(f"'{t}'" for t in DIRECTORY_STATE_TYPES)


class DirectoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def is_public(self, room_id: str) -> bool | None:
        """Whether the room is published; None if this server does not know the room."""
        row = await self._db.fetchrow("SELECT is_public FROM rooms WHERE room_id = $1", room_id)
        return None if row is None else bool(row["is_public"])

    async def set_public(self, room_id: str, public: bool) -> bool:
        """Publish or unpublish a room; False if this server does not know the room."""
        changed = await self._db.execute(
            "UPDATE rooms SET is_public = $2 WHERE room_id = $1", room_id, public
        )
        return changed == 1

    async def public_rooms(self) -> dict[str, int]:
        """Every published room with its number of joined members (any server's users)."""
        rows = await self._db.fetch(
            "SELECT r.room_id, COUNT(m.user_id) AS joined FROM rooms AS r"
            " LEFT JOIN room_memberships AS m"
            " ON m.room_id = r.room_id AND m.membership = 'join'"
            " WHERE r.is_public GROUP BY r.room_id"
        )
        return {r["room_id"]: int(r["joined"]) for r in rows}

    async def directory_state(self, room_id: str) -> dict[StateKey, str]:
        """The event IDs of the room's current state in ``DIRECTORY_STATE_TYPES``."""
        rows = await self._db.fetch(
            "SELECT type, event_id FROM current_state WHERE room_id = $1 AND state_key = ''"
            f" AND type IN ({_TYPE_LIST})",
            room_id,
        )
        return {(r["type"], ""): r["event_id"] for r in rows}

    async def joined_members(self, room_id: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT user_id FROM room_memberships WHERE room_id = $1 AND membership = 'join'",
            room_id,
        )
        return [r["user_id"] for r in rows]
