"""User profiles (table ``profiles``) and the reads the user directory searches with.

A local user without a row has the default profile; the service decides what that is. The
directory queries read ``room_memberships``, ``current_state`` and ``events`` but never write
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from myelin.storage.database import Database, Row

# State that makes a room's members findable by everyone (join rule, history visibility).
PUBLICITY_TYPES = ("m.room.join_rules", "m.room.history_visibility")
_CHUNK = 500  # room IDs per query: stays under both engines' parameter limits


@dataclass(frozen=True, slots=True)
class StoredProfile:
    displayname: str | None
    avatar_url: str | None
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """A user the directory may show; ``profile`` is None when the user never wrote one."""

    user_id: str
    profile: StoredProfile | None
    room_id: str | None  # a visible room the user is joined to (None: found as a local user)


def _like(text: str) -> str:
    """A LIKE pattern (ESCAPE '\\') matching values that contain ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _profile(row: Row) -> StoredProfile | None:
    if row["profile_user"] is None:
        return None
    fields = {} if row["fields"] is None else dict(orjson.loads(row["fields"]))
    return StoredProfile(row["displayname"], row["avatar_url"], fields)


class ProfileStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- profiles --

    async def get_local(self, user_id: str) -> tuple[bool, StoredProfile | None]:
        """(whether ``user_id`` is an account here, its stored profile if it has one)."""
        row = await self._db.fetchrow(
            "SELECT u.user_id, p.user_id AS profile_user, p.displayname, p.avatar_url, p.fields"
            " FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id WHERE u.user_id = $1",
            user_id,
        )
        if row is None:
            return False, None
        return True, _profile(row)

    async def put(self, user_id: str, profile: StoredProfile, search_name: str | None) -> None:
        await self._db.execute(
            "INSERT INTO profiles (user_id, displayname, avatar_url, search_name, fields)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET"
            " displayname = excluded.displayname, avatar_url = excluded.avatar_url,"
            " search_name = excluded.search_name, fields = excluded.fields",
            user_id, profile.displayname, profile.avatar_url, search_name,
            orjson.dumps(profile.fields).decode(),
        )

    # -- which rooms make their members findable --

    async def room_publicity(
        self, room_ids: Sequence[str] | None = None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(room_id, type, content) of the current join rules and history visibility events of
        ``room_ids`` (of every room when None)."""
        base = ("SELECT c.room_id, c.type, e.json FROM current_state c"
                " JOIN events e ON e.event_id = c.event_id"
                " WHERE c.state_key = '' AND c.type IN ($1, $2)")
        if room_ids is None:
            rows = await self._db.fetch(base, *PUBLICITY_TYPES)
        else:
            rows = []
            ids = list(room_ids)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                marks = ", ".join(f"${i + 3}" for i in range(len(chunk)))
                rows += await self._db.fetch(f"{base} AND c.room_id IN ({marks})",
                                             *PUBLICITY_TYPES, *chunk)
        out = []
        for row in rows:
            content = orjson.loads(row["json"]).get("content")
            out.append((row["room_id"], row["type"], content if isinstance(content, dict) else {}))
        return out

    async def rooms_with_publicity_events(self, after: int, upto: int) -> set[str]:
        """Rooms that got a join rules or history visibility event in (after, upto]."""
        rows = await self._db.fetch(
            "SELECT DISTINCT room_id FROM events WHERE stream_ordering > $1"
            " AND stream_ordering <= $2 AND state_key = '' AND type IN ($3, $4)",
            after, upto, *PUBLICITY_TYPES,
        )
        return {r["room_id"] for r in rows}

    # -- directory search --

    async def search_room_members(self, room_ids: Sequence[str], words: Sequence[str],
                                  user_prefix: str | None) -> list[DirectoryEntry]:
        """Users joined to any of ``room_ids`` whose user ID or display name may match (a coarse
        filter: the caller checks each candidate precisely). Deactivated accounts are left out."""
        found: list[DirectoryEntry] = []
        ids = list(room_ids)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            match, args = _match_clause("m.user_id", len(chunk) + 1, words, user_prefix)
            rows = await self._db.fetch(
                "SELECT m.user_id, m.room_id, p.user_id AS profile_user, p.displayname,"
                " p.avatar_url, NULL AS fields FROM room_memberships m"
                " LEFT JOIN profiles p ON p.user_id = m.user_id"
                " LEFT JOIN users u ON u.user_id = m.user_id"
                f" WHERE m.membership = 'join' AND m.room_id IN ({marks})"
                f" AND (u.deactivated IS NULL OR NOT u.deactivated) AND {match}",
                *chunk, *args,
            )
            found += [DirectoryEntry(r["user_id"], _profile(r), r["room_id"]) for r in rows]
        return found

    async def search_local_users(self, words: Sequence[str],
                                 user_prefix: str | None) -> list[DirectoryEntry]:
        """Every active local account that may match (coarse, as ``search_room_members``)."""
        match, args = _match_clause("u.user_id", 1, words, user_prefix)
        rows = await self._db.fetch(
            "SELECT u.user_id, p.user_id AS profile_user, p.displayname, p.avatar_url,"
            " NULL AS fields FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id"
            f" WHERE NOT u.deactivated AND {match}",
            *args,
        )
        return [DirectoryEntry(r["user_id"], _profile(r), None) for r in rows]


def _match_clause(column: str, first: int, words: Sequence[str],
                  user_prefix: str | None) -> tuple[str, list[str]]:
    """SQL requiring a user ID prefix, or every word in the user ID or the display name;
    placeholders are numbered from ``first``."""
    if user_prefix is not None:
        escaped = user_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"lower({column}) LIKE ${first} ESCAPE '\\'", [escaped + "%"]
    clauses, args = [], []
    for i, word in enumerate(words):
        n = first + i
        clauses.append(f"(lower({column}) LIKE ${n} ESCAPE '\\'"
                       f" OR p.search_name LIKE ${n} ESCAPE '\\')")
        args.append(_like(word))
    return " AND ".join(clauses) or "TRUE", args
