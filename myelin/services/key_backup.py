"""Server-side key backups (client-server API, "End-to-end encryption", "Server-side key
backups"): per-user backup versions holding encrypted megolm session keys.

The server never looks inside ``auth_data`` or ``session_data``. Keys may only be written to
the current (latest live) version; the stored key of a session is replaced only by a better one
(see ``KeyBackupStore``); the etag changes whenever a version's keys change.
"""

from __future__ import annotations

from typing import Any

from myelin.errors import MatrixError, bad_json, invalid_param, missing_param, not_found
from myelin.storage.stores.key_backup import (
    BackupVersion,
    KeyBackupStore,
    RoomKey,
    StaleVersionError,
)

_MAX_SAFE_INT = 2**53 - 1  # the canonical JSON integer range


def parse_version(text: str | None) -> int:
    """A version as the client names it; anything we never issued is 404 M_NOT_FOUND."""
    if text is None:
        raise missing_param("Missing query parameter 'version'")
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        raise not_found(f"Unknown backup version {text!r}")
    return int(text)


def _version_json(info: BackupVersion, count: int) -> dict[str, Any]:
    return {"algorithm": info.algorithm, "auth_data": info.auth_data, "count": count,
            "etag": str(info.etag), "version": str(info.version)}


def _backup_body(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if "algorithm" not in body:
        raise missing_param("Missing 'algorithm'")
    if "auth_data" not in body:
        raise missing_param("Missing 'auth_data'")
    algorithm, auth_data = body["algorithm"], body["auth_data"]
    if not isinstance(algorithm, str):
        raise bad_json("'algorithm' must be a string")
    if not isinstance(auth_data, dict):
        raise bad_json("'auth_data' must be an object")
    return algorithm, auth_data


def _key(room_id: str, session_id: str, data: Any) -> RoomKey:
    where = f"key of session {session_id!r} in room {room_id!r}"
    if not isinstance(data, dict):
        raise bad_json(f"The {where} must be an object")
    for name in ("first_message_index", "forwarded_count"):
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int) \
                or not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            raise bad_json(f"'{name}' of the {where} must be an integer")
    if not isinstance(data.get("is_verified"), bool):
        raise bad_json(f"'is_verified' of the {where} must be a boolean")
    if not isinstance(data.get("session_data"), dict):
        raise bad_json(f"'session_data' of the {where} must be an object")
    return RoomKey(room_id, session_id, data["first_message_index"], data["forwarded_count"],
                   data["is_verified"], data["session_data"])


def _sessions(room_id: str, body: Any) -> list[RoomKey]:
    if not isinstance(body, dict) or not isinstance(body.get("sessions"), dict):
        raise bad_json(f"'sessions' of room {room_id!r} must be an object")
    return [_key(room_id, session_id, data) for session_id, data in body["sessions"].items()]


def keys_from_body(body: Any, room_id: str | None = None,
                   session_id: str | None = None) -> list[RoomKey]:
    """Validate an upload body (all rooms, one room, or one session) before anything is
    stored."""
    if room_id is not None and session_id is not None:
        return [_key(room_id, session_id, body)]
    if room_id is not None:
        return _sessions(room_id, body)
    if not isinstance(body, dict) or not isinstance(body.get("rooms"), dict):
        raise bad_json("'rooms' must be an object")
    return [key for rid, room in body["rooms"].items() for key in _sessions(rid, room)]


class KeyBackupService:
    def __init__(self, store: KeyBackupStore) -> None:
        self._store = store

    async def create_version(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        algorithm, auth_data = _backup_body(body)
        version = await self._store.create_version(user_id, algorithm, auth_data)
        return {"version": str(version)}

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        """GET /room_keys/version[/{version}]; None asks for the current version."""
        number = None if version is None else parse_version(version)
        info = await self._store.get_version(user_id, number)
        if info is None:
            raise not_found("No current backup version" if version is None
                            else f"Unknown backup version {version!r}")
        return _version_json(info, await self._store.count(user_id, info.version))

    async def update_version(self, user_id: str, version: str,
                             body: dict[str, Any]) -> dict[str, Any]:
        number = parse_version(version)
        algorithm, auth_data = _backup_body(body)
        if "version" in body and body["version"] != version:
            raise invalid_param("The version in the body does not match the one in the path")
        info = await self._store.get_version(user_id, number)
        if info is None:
            raise not_found(f"Unknown backup version {version!r}")
        if algorithm != info.algorithm:
            raise invalid_param("Algorithm does not match")
        if not await self._store.update_auth_data(user_id, number, auth_data):
            raise not_found(f"Unknown backup version {version!r}")  # deleted meanwhile
        return {}

    async def delete_version(self, user_id: str, version: str) -> dict[str, Any]:
        # Deleting an already deleted version succeeds; one that never existed is 404.
        if not await self._store.delete_version(user_id, parse_version(version)):
            raise not_found(f"Unknown backup version {version!r}")
        return {}

    async def upload(self, user_id: str, version: str | None, body: Any,
                     room_id: str | None = None,
                     session_id: str | None = None) -> dict[str, Any]:
        number = parse_version(version)
        keys = keys_from_body(body, room_id, session_id)
        try:
            etag, count = await self._store.upload(user_id, number, keys)
        except StaleVersionError as e:
            if e.current is None or await self._store.get_version(user_id, number) is None:
                raise not_found(f"Unknown backup version {version!r}") from None
            raise MatrixError(403, "M_WRONG_ROOM_KEYS_VERSION", "Wrong backup version.",
                              current_version=str(e.current)) from None
        return {"etag": str(etag), "count": count}

    async def get_keys(self, user_id: str, version: str | None, room_id: str | None = None,
                       session_id: str | None = None) -> dict[str, Any]:
        number = parse_version(version)
        if await self._store.get_version(user_id, number) is None:
            raise not_found(f"Unknown backup version {version!r}")
        keys = await self._store.get_keys(user_id, number, room_id, session_id)
        if session_id is not None:
            if not keys:
                raise not_found("No room key found for this session")
            return keys[0].to_json()
        if room_id is not None:
            return {"sessions": {k.session_id: k.to_json() for k in keys}}
        rooms: dict[str, Any] = {}
        for k in keys:
            rooms.setdefault(k.room_id, {"sessions": {}})["sessions"][k.session_id] = k.to_json()
        return {"rooms": rooms}

    async def delete_keys(self, user_id: str, version: str | None, room_id: str | None = None,
                          session_id: str | None = None) -> dict[str, Any]:
        number = parse_version(version)
        result = await self._store.delete_keys(user_id, number, room_id, session_id)
        if result is None:
            raise not_found(f"Unknown backup version {version!r}")
        etag, count = result
        return {"etag": str(etag), "count": count}
