"""Room state snapshots (tables ``state_groups`` and ``state_group_entries``) and the current
state of each room (``current_state``, ``room_memberships``).

A state group is either a full snapshot or a delta over its ``prev_group``; a delta chain is
never longer than ``MAX_CHAIN``, after which a full snapshot is written. That keeps each
state-changing event to a few rows (Synapse's state tables are known to reach tens of GB on
small servers) while a read walks at most ``MAX_CHAIN`` groups. Snapshots are immutable, so
they are cached without invalidation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from myelin.core.events import StateKey
from myelin.storage.database import Database, Statement

MAX_CHAIN = 50
_CACHE_GROUPS = 2_000

StateMap = dict[StateKey, str]


@dataclass(frozen=True)
class StateGroupWrite:
    """A new group to insert: ``entries`` is the full state or, with ``prev_group``, the delta
    (a None event ID removes the key)."""

    group_id: int
    room_id: str
    prev_group: int | None
    chain_length: int
    entries: Mapping[StateKey, str | None]


class StateStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: OrderedDict[int, tuple[StateMap, int]] = OrderedDict()

    async def get_state(self, group_id: int) -> StateMap:
        """The full state of a group (a copy the caller may change)."""
        return dict((await self._load(group_id))[0])

    async def _load(self, group_id: int) -> tuple[StateMap, int]:
        cached = self._cache.get(group_id)
        if cached is not None:
            self._cache.move_to_end(group_id)
            return cached
        row = await self._db.fetchrow(
            "SELECT prev_group, chain_length FROM state_groups WHERE group_id = $1", group_id
        )
        if row is None:
            raise KeyError(f"unknown state group {group_id}")
        entries = await self._db.fetch(
            "SELECT type, state_key, event_id FROM state_group_entries WHERE group_id = $1",
            group_id,
        )
        if row["prev_group"] is None:
            state: StateMap = {}
        else:
            state = dict((await self._load(row["prev_group"]))[0])
        for entry in entries:
            key = (entry["type"], entry["state_key"])
            if entry["event_id"] is None:
                state.pop(key, None)
            else:
                state[key] = entry["event_id"]
        result = (state, int(row["chain_length"]))
        self._remember(group_id, result)
        return result

    def _remember(self, group_id: int, value: tuple[StateMap, int]) -> None:
        self._cache[group_id] = value
        if len(self._cache) > _CACHE_GROUPS:
            self._cache.popitem(last=False)

    async def plan_group(
        self, group_id: int, room_id: str, prev_group: int | None,
        changes: Mapping[StateKey, str | None],
    ) -> StateGroupWrite:
        """How to store ``prev_group``'s state with ``changes`` applied as group ``group_id``."""
        if prev_group is None:
            full = {k: v for k, v in changes.items() if v is not None}
            return StateGroupWrite(group_id, room_id, None, 0, full)
        prev_state, prev_chain = await self._load(prev_group)
        if prev_chain + 1 >= MAX_CHAIN:
            state = dict(prev_state)
            for key, value in changes.items():
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
            return StateGroupWrite(group_id, room_id, None, 0, state)
        return StateGroupWrite(group_id, room_id, prev_group, prev_chain + 1, dict(changes))

    def remember_written(self, write: StateGroupWrite, state: StateMap) -> None:
        """Seed the cache with a group just committed, whose full state the writer knows."""
        self._remember(write.group_id, (dict(state), write.chain_length))

    async def get_current_state(self, room_id: str) -> StateMap:
        rows = await self._db.fetch(
            "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1", room_id
        )
        return {(r["type"], r["state_key"]): r["event_id"] for r in rows}

    async def get_current_state_event_id(self, room_id: str, key: StateKey) -> str | None:
        value = await self._db.fetchval(
            "SELECT event_id FROM current_state WHERE room_id = $1 AND type = $2"
            " AND state_key = $3",
            room_id, key[0], key[1],
        )
        return None if value is None else str(value)

    async def get_user_memberships(self, user_id: str) -> list[tuple[str, str, str, int]]:
        """(room_id, membership, event_id, stream_ordering) of every room the user has a
        current membership in (rooms they forgot are left out)."""
        rows = await self._db.fetch(
            "SELECT room_id, membership, event_id, stream_ordering FROM room_memberships"
            " WHERE user_id = $1 AND NOT forgotten",
            user_id,
        )
        return [(r["room_id"], r["membership"], r["event_id"], int(r["stream_ordering"]))
                for r in rows]

    async def joined_members(self, room_id: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT user_id FROM room_memberships WHERE room_id = $1 AND membership = 'join'",
            room_id,
        )
        return [r["user_id"] for r in rows]

    async def list_rooms_for_user(self, user_id: str, membership: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT room_id FROM room_memberships WHERE user_id = $1 AND membership = $2",
            user_id, membership,
        )
        return [r["room_id"] for r in rows]

    async def forget(self, room_id: str, user_id: str) -> None:
        await self._db.execute(
            "UPDATE room_memberships SET forgotten = TRUE WHERE room_id = $1 AND user_id = $2",
            room_id, user_id,
        )

    async def get_membership(self, room_id: str, user_id: str) -> tuple[str, str] | None:
        """(membership, event_id) of the user's current membership event, if any (None once
        the user forgot the room)."""
        row = await self._db.fetchrow(
            "SELECT membership, event_id FROM room_memberships WHERE room_id = $1"
            " AND user_id = $2 AND NOT forgotten",
            room_id, user_id,
        )
        return None if row is None else (row["membership"], row["event_id"])


def state_group_statements(write: StateGroupWrite) -> list[Statement]:
    """The rows of a new state group, for the event's write batch."""
    statements = [Statement(
        "INSERT INTO state_groups (group_id, room_id, prev_group, chain_length)"
        " VALUES ($1, $2, $3, $4)",
        (write.group_id, write.room_id, write.prev_group, write.chain_length),
    )]
    if write.entries:
        statements.append(Statement(
            "INSERT INTO state_group_entries (group_id, type, state_key, event_id)"
            " VALUES ($1, $2, $3, $4)",
            [(write.group_id, k[0], k[1], v) for k, v in write.entries.items()], many=True,
        ))
    return statements
