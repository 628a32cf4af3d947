"""User directory search (client-server API, "User Directory").

Who can be found: users sharing a joined room with the searcher, and users joined to rooms
whose join rule is ``public`` or whose history is ``world_readable`` (the spec's minimum, and
what Synapse searches); with ``user_directory.search_all_users``, every local account too.
Deactivated accounts are never shown.

How a term matches (case-insensitively, after NFKC normalisation): a term starting with ``@``
matches user IDs that start with it; any other term is split into words, and every word must
occur in the user's localpart or display name. Results are ranked by how well they match
(exact, then word prefixes, then anywhere), then users sharing a room with the searcher, then
those with a display name and an avatar.

Which rooms are public is kept in memory and brought up to date from the event stream before
each search, so a search reads no room state unless a join rule or history visibility changed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from myelin.config import UserDirectoryConfig
from myelin.errors import MatrixError
from myelin.services.auth import Requester
from myelin.services.profiles import as_json, default_profile, normalise
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.profiles import DirectoryEntry, ProfileStore, StoredProfile
from myelin.storage.stores.state import StateStore

MAX_LIMIT = 50  # as Synapse
_WORDS = re.compile(r"[\w\-]+")


def guest_forbidden() -> MatrixError:
    return MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guests cannot search the user directory")


class PublicRooms:
    """Rooms whose members everyone may find, as of the event stream's current position."""

    def __init__(self, store: ProfileStore, stream: StreamPositions) -> None:
        self._store = store
        self._stream = stream
        self._public: set[str] = set()
        self._upto: int | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> set[str]:
        async with self._lock:
            upto = self._stream.current  # taken first: a later event is re-read next time
            if self._upto is None:
                self._public = _public_of(await self._store.room_publicity())
            elif upto > self._upto:
                changed = await self._store.rooms_with_publicity_events(self._upto, upto)
                if changed:
                    self._public -= changed
                    self._public |= _public_of(await self._store.room_publicity(sorted(changed)))
            self._upto = upto
            return set(self._public)


def _public_of(rows: Iterable[tuple[str, str, dict[str, Any]]]) -> set[str]:
    wanted = {"m.room.join_rules": ("join_rule", "public"),
              "m.room.history_visibility": ("history_visibility", "world_readable")}
    public = set()
    for room_id, event_type, content in rows:
        key, value = wanted[event_type]
        if content.get(key) == value:
            public.add(room_id)
    return public


@dataclass(frozen=True)
class _Query:
    words: list[str]
    whole: str  # the whole normalised term, for exact matches
    user_prefix: str | None  # set when the term is a user ID (prefix)

    @classmethod
    def parse(cls, term: str) -> _Query:
        text = normalise(term.strip())
        if text.startswith("@"):
            return cls([], text, text)
        return cls(_WORDS.findall(text), " ".join(_WORDS.findall(text)), None)

    def rank(self, user_id: str, profile: StoredProfile) -> int | None:
        """0 exact, 1 every word starts a word of the name or localpart, 2 anywhere; None if
        the user does not match."""
        if self.user_prefix is not None:
            lowered = user_id.lower()
            if not lowered.startswith(self.user_prefix):
                return None
            return 0 if lowered == self.user_prefix else 1
        if not self.words:
            return None
        localpart = user_id[1:].partition(":")[0].lower()
        name = normalise(profile.displayname) if profile.displayname is not None else ""
        if not all(word in localpart or word in name for word in self.words):
            return None
        if self.whole in (localpart, " ".join(_WORDS.findall(name))):
            return 0
        tokens = [localpart, *_WORDS.findall(localpart), *_WORDS.findall(name)]
        if all(any(t.startswith(word) for t in tokens) for word in self.words):
            return 1
        return 2


class UserDirectoryService:
    def __init__(self, store: ProfileStore, state: StateStore, stream: StreamPositions,
                 config: UserDirectoryConfig, server_name: str) -> None:
        self._store = store
        self._state = state
        self._config = config
        self._server_name = server_name
        self.public_rooms = PublicRooms(store, stream)

    async def search(self, requester: Requester, term: str, limit: int) -> dict[str, Any]:
        if requester.is_guest:
            raise guest_forbidden()
        limit = max(0, min(limit, MAX_LIMIT))
        query = _Query.parse(term)
        if not self._config.enabled or (not query.words and query.user_prefix is None):
            return {"results": [], "limited": False}
        joined = set(await self._state.list_rooms_for_user(requester.user_id, "join"))
        visible = joined | await self.public_rooms.current()
        entries = await self._store.search_room_members(sorted(visible), query.words,
                                                        query.user_prefix)
        if self._config.search_all_users:
            entries += await self._store.search_local_users(query.words, query.user_prefix)
        ranked = _rank(query, entries, joined, ":" + self._server_name)
        results = [_result(user_id, profile) for _, user_id, profile in ranked[:limit]]
        return {"results": results, "limited": len(ranked) > limit}


def _rank(query: _Query, entries: list[DirectoryEntry], joined: set[str],
          local_suffix: str) -> list[tuple[tuple[int, ...], str, StoredProfile]]:
    shares: dict[str, bool] = {}
    profiles: dict[str, StoredProfile] = {}
    for entry in entries:
        shares[entry.user_id] = shares.get(entry.user_id, False) or entry.room_id in joined
        if entry.profile is not None:
            profiles[entry.user_id] = entry.profile
        elif entry.user_id.endswith(local_suffix):
            profiles[entry.user_id] = default_profile(entry.user_id)
        else:  # a remote user: their profile is unknown here until federation queries exist
            profiles[entry.user_id] = StoredProfile(None, None, {})
    ranked: list[tuple[tuple[int, ...], str, StoredProfile]] = []
    for user_id, profile in profiles.items():
        rank = query.rank(user_id, profile)
        if rank is None:
            continue
        key = (rank, 0 if shares[user_id] else 1, 0 if profile.displayname else 1,
               0 if profile.avatar_url else 1)
        ranked.append((key, user_id, profile))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return ranked


def _result(user_id: str, profile: StoredProfile) -> dict[str, Any]:
    served = as_json(profile)
    result: dict[str, Any] = {"user_id": user_id}
    if "displayname" in served:
        result["display_name"] = served["displayname"]
    if "avatar_url" in served:
        result["avatar_url"] = served["avatar_url"]
    return result
