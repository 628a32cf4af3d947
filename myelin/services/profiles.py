"""User profiles (client-server API, "Profiles"): display name, avatar and custom fields.

Every local account has a profile: until its first change it is the default one Synapse gives
new accounts (``displayname`` = the localpart), so accounts need no profile row to exist.
Changes to ``displayname`` or ``avatar_url`` are propagated ("Events on Change of Profile
Information") as a new ``m.room.member`` join event in every room the user is joined to.
Remote users' profiles need federation queries, which are not implemented yet: they are 404.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
import weakref
from typing import Any, Protocol

import orjson

from myelin.errors import MatrixError, forbidden, invalid_param, missing_param, not_found
from myelin.ids import UserID
from myelin.services.auth import Requester
from myelin.services.rooms.timeline import Timeline
from myelin.storage.stores.profiles import ProfileStore, StoredProfile
from myelin.storage.stores.state import StateStore

log = logging.getLogger(__name__)

DISPLAYNAME = "displayname"
AVATAR_URL = "avatar_url"
MEMBER_KEYS = (DISPLAYNAME, AVATAR_URL)  # the keys member events carry
MAX_PROFILE_BYTES = 64 * 1024  # "the total profile MUST be under 64 KiB"
MAX_KEY_BYTES = 255  # M_KEY_TOO_LARGE above this
MAX_DISPLAYNAME_CHARS = 256  # Synapse's limits on the two keys rooms see
MAX_AVATAR_URL_CHARS = 1000
# Appendices, "Common Namespaced Identifier Grammar" (displayname and avatar_url fit it too).
_KEY_GRAMMAR = re.compile(r"[a-z][a-z0-9_.\-]*")
# Keys of the old member event that a profile update does not repeat: they described the join.
_NOT_REPEATED = ("reason", "join_authorised_via_users_server")


def search_name(displayname: str | None) -> str | None:
    """The form of a display name the user directory matches against."""
    return None if displayname is None else normalise(displayname)


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text.lower())


def check_key(key: str) -> None:
    if not key:
        raise invalid_param("Profile key is empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise MatrixError(400, "M_KEY_TOO_LARGE",
                          f"Profile keys are at most {MAX_KEY_BYTES} bytes long")
    if not _KEY_GRAMMAR.fullmatch(key):
        raise invalid_param("Profile keys follow the Common Namespaced Identifier Grammar")


def as_json(profile: StoredProfile) -> dict[str, Any]:
    """The profile as GET /profile serves it (unset keys left out)."""
    out: dict[str, Any] = {}
    if profile.displayname is not None:
        out[DISPLAYNAME] = profile.displayname
    if profile.avatar_url is not None:
        out[AVATAR_URL] = profile.avatar_url
    out.update(profile.fields)
    return out


def default_profile(user_id: str) -> StoredProfile:
    return StoredProfile(UserID.parse(user_id).localpart, None, {})


class RemoteProfiles(Protocol):
    async def profile(self, user_id: str, field: str | None = None) -> dict[str, Any]: ...


class ProfileService:
    def __init__(self, store: ProfileStore, timeline: Timeline, state: StateStore,
                 server_name: str) -> None:
        self._store = store
        self._timeline = timeline
        self._state = state
        self._server_name = server_name
        # One change at a time per user: each is a read-modify-write of the whole profile.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()
        # Set by the federation layer: profiles of other servers' users.
        self.remote: RemoteProfiles | None = None

    # -- reading --

    async def _load(self, user_id: str) -> StoredProfile | None:
        """The profile of a local account (the default one if never changed); None if there
        is no such account here."""
        exists, stored = await self._store.get_local(user_id)
        if not exists:
            return None
        return stored if stored is not None else default_profile(user_id)

    async def _readable(self, user_id: str) -> StoredProfile:
        target = UserID.parse(user_id)
        if target.domain != self._server_name:
            raise not_found("Profiles of users on other servers cannot be queried yet")
        profile = await self._load(user_id)
        if profile is None:
            raise not_found("Profile not found")
        return profile

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        if self.remote is not None and UserID.parse(user_id).domain != self._server_name:
            return await self.remote.profile(user_id)
        served = as_json(await self._readable(user_id))
        if not served:
            raise not_found("Profile not found")
        return served

    async def get_field(self, user_id: str, key: str) -> dict[str, Any]:
        target = UserID.parse(user_id)
        check_key(key)
        if self.remote is not None and target.domain != self._server_name:
            return await self.remote.profile(user_id, key)
        served = as_json(await self._readable(user_id))
        if key not in served:
            raise not_found(f"The profile has no {key!r}")
        return {key: served[key]}

    async def member_content(self, user_id: str) -> dict[str, Any]:
        """``displayname``/``avatar_url`` for a member event of ``user_id`` (only those set;
        empty for users of other servers and unknown users)."""
        try:
            target = UserID.parse(user_id)
        except MatrixError:
            return {}
        if target.domain != self._server_name:
            return {}
        profile = await self._load(user_id)
        if profile is None:
            return {}
        served = as_json(profile)
        return {key: served[key] for key in MEMBER_KEYS if key in served}

    # -- writing --

    def _check_writer(self, requester: Requester, user_id: str, key: str) -> None:
        UserID.parse(user_id)
        check_key(key)
        if requester.user_id != user_id:
            raise forbidden("You cannot change the profile of another user")
        if requester.is_guest and key != DISPLAYNAME:
            # As Synapse: guests may only name themselves.
            raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN",
                              "Guests may only set their display name")

    async def set_field(self, requester: Requester, user_id: str, key: str,
                        body: dict[str, Any]) -> None:
        self._check_writer(requester, user_id, key)
        if key not in body:
            raise missing_param(f"The body has no {key!r}")
        await self._change(user_id, key, _checked_value(key, body[key]))

    async def delete_field(self, requester: Requester, user_id: str, key: str) -> None:
        """Remove ``key``; removing a key that is not set succeeds too."""
        self._check_writer(requester, user_id, key)
        await self._change(user_id, key, None)

    async def _change(self, user_id: str, key: str, value: Any) -> None:
        """Set ``key`` to ``value``, or remove it when ``value`` is None."""
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = asyncio.Lock()
        async with lock:
            current = await self._load(user_id)
            if current is None:  # a token of a local user whose account row is gone
                raise forbidden("No such account")
            changed = _with(current, key, value)
            if changed == current:
                return
            try:
                size = len(orjson.dumps(as_json(changed)))
            except (orjson.JSONEncodeError, TypeError):
                raise MatrixError(400, "M_BAD_JSON",
                                  "The value cannot be stored as JSON") from None
            if size >= MAX_PROFILE_BYTES:
                raise MatrixError(400, "M_PROFILE_TOO_LARGE",
                                  "The profile would be 64 KiB or larger")
            await self._store.put(user_id, changed, search_name(changed.displayname))
            if key in MEMBER_KEYS:
                await self._propagate(user_id, changed)

    async def _propagate(self, user_id: str, profile: StoredProfile) -> None:
        """Send the new name and avatar into every joined room: one join event each, keeping
        the rest of the current member event's content. A room that refuses is skipped."""
        wanted = as_json(profile)
        for room_id in sorted(await self._state.list_rooms_for_user(user_id, "join")):
            try:
                membership = await self._state.get_membership(room_id, user_id)
                if membership is None or membership[0] != "join":
                    continue
                old = (await self._timeline.get_pdus([membership[1]])).get(membership[1])
                content = dict(old.content) if old is not None else {}
                for key in (*_NOT_REPEATED, *MEMBER_KEYS):
                    content.pop(key, None)
                content.update({key: wanted[key] for key in MEMBER_KEYS if key in wanted})
                content["membership"] = "join"
                if old is not None and content == old.content:
                    continue
                await self._timeline.append(room_id, user_id, "m.room.member", content,
                                            state_key=user_id)
            except Exception:
                log.warning("could not update %s's member event in %s", user_id, room_id,
                            exc_info=True)


def _checked_value(key: str, value: Any) -> Any:
    """The value to store for ``key`` (None: unset it), or 400 if the value is not allowed."""
    if value is None:
        # "Servers MAY reject null values": as Synapse, so clients never come to rely on them.
        raise invalid_param(f"{key!r} cannot be null; DELETE the key instead")
    if key == DISPLAYNAME:
        if not isinstance(value, str):
            raise invalid_param("displayname must be a string")
        if len(value) > MAX_DISPLAYNAME_CHARS:
            raise invalid_param(f"displayname is longer than {MAX_DISPLAYNAME_CHARS} characters")
        return value.strip() or None  # as Synapse: blank unsets it
    if key == AVATAR_URL:
        if not isinstance(value, str):
            raise invalid_param("avatar_url must be a string")
        if len(value) > MAX_AVATAR_URL_CHARS:
            raise invalid_param(f"avatar_url is longer than {MAX_AVATAR_URL_CHARS} characters")
        return value or None
    if key == "m.tz" and not isinstance(value, str):
        raise invalid_param("m.tz must be a string")
    return value


def _with(profile: StoredProfile, key: str, value: Any) -> StoredProfile:
    if key == DISPLAYNAME:
        return StoredProfile(value, profile.avatar_url, profile.fields)
    if key == AVATAR_URL:
        return StoredProfile(profile.displayname, value, profile.fields)
    fields = dict(profile.fields)
    if value is None:
        fields.pop(key, None)
    else:
        fields[key] = value
    return StoredProfile(profile.displayname, profile.avatar_url, fields)
