"""Pushers (table ``pushers``): one per (user, app_id, pushkey)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from myelin.storage.database import Database, Row, Statement

_COLUMNS = ("user_id, app_id, pushkey, kind, app_display_name, device_display_name,"
            " profile_tag, lang, data, device_id, pushkey_ts, last_stream_ordering")


@dataclass(frozen=True, slots=True)
class Pusher:
    user_id: str
    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]
    device_id: str | None
    pushkey_ts: int  # ms
    last_stream_ordering: int

    @property
    def key(self) -> tuple[str, str, str]:
        return self.user_id, self.app_id, self.pushkey

    def to_json(self) -> dict[str, Any]:
        """The ``Pusher`` object of ``GET /pushers``."""
        out: dict[str, Any] = {
            "pushkey": self.pushkey, "kind": self.kind, "app_id": self.app_id,
            "app_display_name": self.app_display_name,
            "device_display_name": self.device_display_name, "lang": self.lang,
            "data": self.data,
        }
        if self.profile_tag is not None:
            out["profile_tag"] = self.profile_tag
        return out


def _pusher(row: Row) -> Pusher:
    return Pusher(row["user_id"], row["app_id"], row["pushkey"], row["kind"],
                  row["app_display_name"], row["device_display_name"], row["profile_tag"],
                  row["lang"], orjson.loads(row["data"]), row["device_id"],
                  int(row["pushkey_ts"]), int(row["last_stream_ordering"]))


class PusherStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, pusher: Pusher, *, remove_other_users: bool) -> None:
        """Create or replace the pusher; with ``remove_other_users``, delete the pushers of
        other users with the same app ID and pushkey in the same transaction."""
        statements = []
        if remove_other_users:
            statements.append(Statement(
                "DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3",
                (pusher.app_id, pusher.pushkey, pusher.user_id)))
        statements.append(Statement(
            f"INSERT INTO pushers ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
            " $10, $11, $12) ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET"
            " kind = excluded.kind, app_display_name = excluded.app_display_name,"
            " device_display_name = excluded.device_display_name,"
            " profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data,"
            " device_id = excluded.device_id, pushkey_ts = excluded.pushkey_ts,"
            " last_stream_ordering = excluded.last_stream_ordering",
            (pusher.user_id, pusher.app_id, pusher.pushkey, pusher.kind,
             pusher.app_display_name, pusher.device_display_name, pusher.profile_tag,
             pusher.lang, orjson.dumps(pusher.data).decode(), pusher.device_id,
             pusher.pushkey_ts, pusher.last_stream_ordering)))
        await self._db.write_batch(statements)

    async def delete(self, user_id: str, app_id: str, pushkey: str) -> bool:
        deleted = await self._db.execute(
            "DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
            user_id, app_id, pushkey)
        return deleted > 0

    async def get(self, user_id: str, app_id: str, pushkey: str) -> Pusher | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM pushers WHERE user_id = $1 AND app_id = $2"
            " AND pushkey = $3",
            user_id, app_id, pushkey)
        return None if row is None else _pusher(row)

    async def list_for_user(self, user_id: str) -> list[Pusher]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM pushers WHERE user_id = $1 ORDER BY app_id, pushkey",
            user_id)
        return [_pusher(r) for r in rows]

    async def list_of_kind(self, kind: str,
                           user_ids: Sequence[str] | None = None) -> list[Pusher]:
        """Every pusher of ``kind``, or only those of ``user_ids``."""
        if user_ids is None:
            rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM pushers WHERE kind = $1", kind)
            return [_pusher(r) for r in rows]
        found: list[Pusher] = []
        ids = list(user_ids)
        for start in range(0, len(ids), 500):  # stays under both engines' parameter limits
            chunk = ids[start:start + 500]
            marks = ", ".join(f"${i + 2}" for i in range(len(chunk)))
            rows = await self._db.fetch(
                f"SELECT {_COLUMNS} FROM pushers WHERE kind = $1 AND user_id IN ({marks})",
                kind, *chunk)
            found.extend(_pusher(r) for r in rows)
        return found

    async def advance(self, user_id: str, app_id: str, pushkey: str,
                      stream_ordering: int) -> bool:
        """Record that the pusher dealt with notifications up to ``stream_ordering`` (never
        moving backwards); False when the pusher no longer exists."""
        updated = await self._db.execute(
            "UPDATE pushers SET last_stream_ordering = CASE WHEN last_stream_ordering < $4"
            " THEN $4 ELSE last_stream_ordering END"
            " WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
            user_id, app_id, pushkey, stream_ordering)
        return updated > 0
