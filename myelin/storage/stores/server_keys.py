"""Other servers' signing keys (table ``server_keys``), as verified key responses described them.

The keyring verifies a ``/_matrix/key/v2/server`` response (fetched directly or through a
notary) before it gets here; this store only remembers it, one row per key, together with the
whole signed response so our notary endpoint can pass the original object on.

Which response wins when two describe the same key: a fresher one (greater ``valid_until_ts``)
of the same kind, and news that a current key is now an old one ("Retrieving server keys":
old_verify_keys carry when the key stopped being used) always. A stale notary answer can
therefore neither shorten a key's known validity nor bring an expired key back as current.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from myelin.storage.database import Database, Row

_COLUMNS = (
    "server_name, key_id, verify_key, valid_until_ts, expired_ts, fetched_ts, from_server"
)

_UPSERT = (
    f"INSERT INTO server_keys ({_COLUMNS}, key_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (server_name, key_id) DO UPDATE SET verify_key = excluded.verify_key,"
    " valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts,"
    " fetched_ts = excluded.fetched_ts, from_server = excluded.from_server,"
    " key_json = excluded.key_json"
    " WHERE (server_keys.expired_ts IS NULL AND excluded.expired_ts IS NOT NULL)"
    " OR (server_keys.expired_ts IS NULL AND excluded.expired_ts IS NULL"
    "     AND excluded.valid_until_ts >= server_keys.valid_until_ts)"
    " OR (server_keys.expired_ts IS NOT NULL AND excluded.expired_ts IS NOT NULL"
    "     AND excluded.valid_until_ts >= server_keys.valid_until_ts)"
)


@dataclass(frozen=True, slots=True)
class ServerKeyRecord:
    server_name: str
    key_id: str
    verify_key: str  # unpadded base64
    valid_until_ts: int  # of the response that described the key
    expired_ts: int | None  # None: a current key (verify_keys); else an old_verify_key
    fetched_ts: int
    from_server: str  # the server itself, or the notary that vouched for the response


def _record(row: Row) -> ServerKeyRecord:
    return ServerKeyRecord(
        row["server_name"], row["key_id"], row["verify_key"], int(row["valid_until_ts"]),
        None if row["expired_ts"] is None else int(row["expired_ts"]), int(row["fetched_ts"]),
        row["from_server"],
    )


def response_rows(
    response: Mapping[str, Any], *, from_server: str, fetched_ts: int
) -> list[tuple[Any, ...]]:
    """One row per ed25519 key the (already verified) response lists, current and old."""
    server_name = response["server_name"]
    valid_until_ts = int(response["valid_until_ts"])
    key_json = orjson.dumps(response).decode()
    rows: list[tuple[Any, ...]] = []
    for key_id, entry in (response.get("verify_keys") or {}).items():
        if key_id.startswith("ed25519:") and isinstance(entry, dict):
            rows.append((server_name, key_id, entry["key"], valid_until_ts, None, fetched_ts,
                         from_server, key_json))
    for key_id, entry in (response.get("old_verify_keys") or {}).items():
        if key_id.startswith("ed25519:") and isinstance(entry, dict):
            rows.append((server_name, key_id, entry["key"], valid_until_ts,
                         int(entry["expired_ts"]), fetched_ts, from_server, key_json))
    return rows


class ServerKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def store_response(
        self, response: Mapping[str, Any], *, from_server: str, fetched_ts: int
    ) -> None:
        """Remember every key of a verified key response (see the module docstring for which
        of two responses describing the same key is kept)."""
        rows = response_rows(response, from_server=from_server, fetched_ts=fetched_ts)
        if rows:
            await self._db.executemany(_UPSERT, rows)

    async def get_keys(
        self, server_name: str, key_ids: Collection[str] | None = None
    ) -> dict[str, ServerKeyRecord]:
        """The keys we hold for ``server_name`` by key ID (only ``key_ids``, when given)."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM server_keys WHERE server_name = $1", server_name
        )
        wanted = None if key_ids is None else set(key_ids)
        return {
            row["key_id"]: _record(row)
            for row in rows
            if wanted is None or row["key_id"] in wanted
        }

    async def latest_response(self, server_name: str) -> dict[str, Any] | None:
        """The freshest signed key response we hold for ``server_name``, as it was received."""
        row = await self._db.fetchrow(
            "SELECT key_json FROM server_keys WHERE server_name = $1"
            " ORDER BY valid_until_ts DESC, fetched_ts DESC LIMIT 1",
            server_name,
        )
        return None if row is None else dict(orjson.loads(row["key_json"]))

    async def responses(
        self, server_name: str, key_ids: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every distinct signed response describing the keys (all, or ``key_ids``) of
        ``server_name``, freshest first: what a notary answers with."""
        rows = await self._db.fetch(
            "SELECT key_id, key_json FROM server_keys WHERE server_name = $1"
            " ORDER BY valid_until_ts DESC, fetched_ts DESC",
            server_name,
        )
        wanted = None if not key_ids else set(key_ids)
        seen: set[str] = set()
        out: list[dict[str, Any]] = []
        for row in rows:
            if (wanted is None or row["key_id"] in wanted) and row["key_json"] not in seen:
                seen.add(row["key_json"])
                out.append(dict(orjson.loads(row["key_json"])))
        return out
