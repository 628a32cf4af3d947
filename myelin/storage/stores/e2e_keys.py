"""End-to-end encryption keys: device keys, one-time and fallback keys, cross-signing keys,
their signatures, and the device-list change stream (tables of migration 0017)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from myelin.storage.database import Database, Statement

# Signatures: (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
SignatureRow = tuple[str, str, str, str, str]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _loads(text: str) -> Any:
    return orjson.loads(text)


class E2eKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- device keys --

    def delete_device_statements(self, user_id: str, device_ids: list[str]) -> list[Statement]:
        rows = [(user_id, d) for d in device_ids]
        return [Statement(f"DELETE FROM {table} WHERE user_id = $1 AND device_id = $2", rows,
                          many=True)
                for table in ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys")]

    async def get_device_keys(self, user_id: str, device_id: str) -> dict[str, Any] | None:
        value = await self._db.fetchval(
            "SELECT key_json FROM e2e_device_keys WHERE user_id = $1 AND device_id = $2",
            user_id, device_id,
        )
        return None if value is None else dict(_loads(value))

    async def list_device_keys(self, user_id: str, device_ids: Sequence[str] | None
                               ) -> list[tuple[str, dict[str, Any], str | None]]:
        """(device_id, keys, display name) of the user's existing devices that have keys."""
        rows = await self._db.fetch(
            "SELECT k.device_id, k.key_json, d.display_name FROM e2e_device_keys k"
            " JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id"
            " WHERE k.user_id = $1 ORDER BY k.device_id",
            user_id,
        )
        wanted = None if not device_ids else set(device_ids)
        return [(r["device_id"], dict(_loads(r["key_json"])), r["display_name"]) for r in rows
                if wanted is None or r["device_id"] in wanted]

    async def get_device(self, user_id: str, device_id: str
                         ) -> tuple[dict[str, Any] | None, str | None] | None:
        """(keys or None, display name) of an existing local device; None if there is none."""
        row = await self._db.fetchrow(
            "SELECT d.display_name, k.key_json FROM devices d LEFT JOIN e2e_device_keys k"
            " ON k.user_id = d.user_id AND k.device_id = d.device_id"
            " WHERE d.user_id = $1 AND d.device_id = $2",
            user_id, device_id,
        )
        if row is None:
            return None
        keys = None if row["key_json"] is None else dict(_loads(row["key_json"]))
        return keys, row["display_name"]

    async def list_device_ids(self, user_id: str) -> list[str]:
        rows = await self._db.fetch("SELECT device_id FROM devices WHERE user_id = $1", user_id)
        return [r["device_id"] for r in rows]

    @staticmethod
    def put_device_keys(user_id: str, device_id: str, keys: dict[str, Any]) -> Statement:
        return Statement(
            "INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json",
            (user_id, device_id, _dumps(keys)),
        )

    # -- one-time keys --

    async def count_one_time_keys(self, user_id: str, device_id: str) -> dict[str, int]:
        rows = await self._db.fetch(
            "SELECT algorithm, COUNT(*) AS n FROM e2e_one_time_keys"
            " WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm",
            user_id, device_id,
        )
        return {r["algorithm"]: int(r["n"]) for r in rows}

    async def get_one_time_keys(self, user_id: str, device_id: str
                                ) -> dict[tuple[str, str], Any]:
        rows = await self._db.fetch(
            "SELECT algorithm, key_id, key_json FROM e2e_one_time_keys"
            " WHERE user_id = $1 AND device_id = $2",
            user_id, device_id,
        )
        return {(r["algorithm"], r["key_id"]): _loads(r["key_json"]) for r in rows}

    @staticmethod
    def add_one_time_keys(user_id: str, device_id: str,
                          keys: Iterable[tuple[str, str, Any]]) -> Statement:
        return Statement(
            "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(user_id, device_id, algorithm, key_id, _dumps(key))
             for algorithm, key_id, key in keys],
            many=True,
        )

    async def claim_one_time_key(self, user_id: str, device_id: str,
                                 algorithm: str) -> tuple[str, Any] | None:
        """Remove and return one key; a key two claimers race for goes to only one of them."""
        while True:
            row = await self._db.fetchrow(
                "SELECT key_id, key_json FROM e2e_one_time_keys WHERE user_id = $1"
                " AND device_id = $2 AND algorithm = $3 ORDER BY key_id LIMIT 1",
                user_id, device_id, algorithm,
            )
            if row is None:
                return None
            deleted = await self._db.execute(
                "DELETE FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2"
                " AND algorithm = $3 AND key_id = $4",
                user_id, device_id, algorithm, row["key_id"],
            )
            if deleted == 1:
                return row["key_id"], _loads(row["key_json"])

    # -- fallback keys --

    async def get_fallback_keys(self, user_id: str, device_id: str
                                ) -> dict[str, tuple[str, Any, bool]]:
        """algorithm -> (key_id, key, used)."""
        rows = await self._db.fetch(
            "SELECT algorithm, key_id, key_json, used FROM e2e_fallback_keys"
            " WHERE user_id = $1 AND device_id = $2",
            user_id, device_id,
        )
        return {r["algorithm"]: (r["key_id"], _loads(r["key_json"]), bool(r["used"]))
                for r in rows}

    @staticmethod
    def put_fallback_key(user_id: str, device_id: str, algorithm: str, key_id: str,
                         key: Any) -> Statement:
        return Statement(
            "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json,"
            " used) VALUES ($1, $2, $3, $4, $5, FALSE)"
            " ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET"
            " key_id = excluded.key_id, key_json = excluded.key_json, used = FALSE",
            (user_id, device_id, algorithm, key_id, _dumps(key)),
        )

    async def claim_fallback_key(self, user_id: str, device_id: str,
                                 algorithm: str) -> tuple[str, Any] | None:
        """The fallback key (marked used; it is handed out again until replaced)."""
        row = await self._db.fetchrow(
            "SELECT key_id, key_json FROM e2e_fallback_keys WHERE user_id = $1"
            " AND device_id = $2 AND algorithm = $3",
            user_id, device_id, algorithm,
        )
        if row is None:
            return None
        await self._db.execute(
            "UPDATE e2e_fallback_keys SET used = TRUE WHERE user_id = $1 AND device_id = $2"
            " AND algorithm = $3 AND key_id = $4",
            user_id, device_id, algorithm, row["key_id"],
        )
        return row["key_id"], _loads(row["key_json"])

    async def unused_fallback_algorithms(self, user_id: str, device_id: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = $1 AND device_id = $2"
            " AND NOT used ORDER BY algorithm",
            user_id, device_id,
        )
        return [r["algorithm"] for r in rows]

    # -- cross-signing keys and signatures --

    async def get_cross_signing_keys(self, user_id: str) -> dict[str, dict[str, Any]]:
        """key_type -> key, as uploaded."""
        rows = await self._db.fetch(
            "SELECT key_type, key_json FROM e2e_cross_signing_keys WHERE user_id = $1", user_id
        )
        return {r["key_type"]: dict(_loads(r["key_json"])) for r in rows}

    @staticmethod
    def put_cross_signing_key(user_id: str, key_type: str, key: dict[str, Any]) -> Statement:
        return Statement(
            "INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_json) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json",
            (user_id, key_type, _dumps(key)),
        )

    @staticmethod
    def add_signatures(rows: Sequence[SignatureRow]) -> Statement:
        return Statement(
            "INSERT INTO e2e_signatures (target_user_id, target_key_id, signer_user_id,"
            " signer_key_id, signature) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id)"
            " DO UPDATE SET signature = excluded.signature",
            list(rows), many=True,
        )

    async def get_signatures(self, target_user_id: str,
                             viewer_id: str) -> dict[str, list[tuple[str, str, str]]]:
        """target_key_id -> [(signer_user_id, signer_key_id, signature)]: the owner's own
        signatures, plus those ``viewer_id`` made."""
        rows = await self._db.fetch(
            "SELECT target_key_id, signer_user_id, signer_key_id, signature FROM e2e_signatures"
            " WHERE target_user_id = $1 AND (signer_user_id = $1 OR signer_user_id = $2)",
            target_user_id, viewer_id,
        )
        out: dict[str, list[tuple[str, str, str]]] = {}
        for r in rows:
            out.setdefault(r["target_key_id"], []).append(
                (r["signer_user_id"], r["signer_key_id"], r["signature"]))
        return out

    # -- device list stream --

    @staticmethod
    def mark_changed(user_id: str, stream_id: int) -> Statement:
        return Statement(
            "INSERT INTO device_list_changes (user_id, stream_id) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id",
            (user_id, stream_id),
        )

    @staticmethod
    def mark_changed_for(observer_id: str, user_ids: Sequence[str],
                         stream_id: int) -> Statement:
        return Statement(
            "INSERT INTO device_list_private_changes (observer_id, user_id, stream_id)"
            " VALUES ($1, $2, $3) ON CONFLICT (observer_id, user_id)"
            " DO UPDATE SET stream_id = excluded.stream_id",
            [(observer_id, user_id, stream_id) for user_id in user_ids], many=True,
        )

    async def write(self, statements: Sequence[Statement]) -> None:
        await self._db.write_batch(statements)

    async def users_sharing_rooms(self, user_id: str) -> set[str]:
        """Users joined to a room the user is joined to (the user included when joined
        anywhere)."""
        rows = await self._db.fetch(
            "SELECT DISTINCT m2.user_id FROM room_memberships m1 JOIN room_memberships m2"
            " ON m1.room_id = m2.room_id WHERE m1.user_id = $1 AND m1.membership = 'join'"
            " AND m2.membership = 'join'",
            user_id,
        )
        return {r["user_id"] for r in rows}

    async def changed_key_owners(self, user_id: str, after: int, upto: int) -> set[str]:
        """Users whose keys changed in (after, upto] who share a room with ``user_id`` (or are
        ``user_id``), plus private changes addressed to ``user_id``."""
        rows = await self._db.fetch(
            "SELECT c.user_id FROM device_list_changes c WHERE c.stream_id > $2"
            " AND c.stream_id <= $3 AND (c.user_id = $1 OR c.user_id IN ("
            "  SELECT m2.user_id FROM room_memberships m1 JOIN room_memberships m2"
            "  ON m1.room_id = m2.room_id WHERE m1.user_id = $1 AND m1.membership = 'join'"
            "  AND m2.membership = 'join'))"
            " UNION SELECT p.user_id FROM device_list_private_changes p"
            " WHERE p.observer_id = $1 AND p.stream_id > $2 AND p.stream_id <= $3",
            user_id, after, upto,
        )
        return {r["user_id"] for r in rows}

    async def newly_shared(self, user_id: str, after: int, upto: int) -> set[str]:
        """Joined co-members where either side's current membership came in (after, upto]."""
        rows = await self._db.fetch(
            "SELECT DISTINCT m2.user_id FROM room_memberships m1 JOIN room_memberships m2"
            " ON m1.room_id = m2.room_id WHERE m1.user_id = $1 AND m1.membership = 'join'"
            " AND m2.membership = 'join' AND m2.user_id <> $1"
            " AND ((m1.stream_ordering > $2 AND m1.stream_ordering <= $3)"
            "  OR (m2.stream_ordering > $2 AND m2.stream_ordering <= $3))",
            user_id, after, upto,
        )
        return {r["user_id"] for r in rows}

    async def maybe_left(self, user_id: str, after: int, upto: int) -> set[str]:
        """Users who stopped sharing some room with ``user_id`` in (after, upto]."""
        rows = await self._db.fetch(
            "SELECT DISTINCT m2.user_id FROM room_memberships m1 JOIN room_memberships m2"
            " ON m1.room_id = m2.room_id WHERE m1.user_id = $1 AND m2.user_id <> $1 AND ("
            " (m1.membership = 'join' AND m2.membership IN ('leave', 'ban')"
            "  AND m2.stream_ordering > $2 AND m2.stream_ordering <= $3)"
            " OR (m1.membership IN ('leave', 'ban') AND m2.membership = 'join'"
            "  AND m1.stream_ordering > $2 AND m1.stream_ordering <= $3))",
            user_id, after, upto,
        )
        return {r["user_id"] for r in rows}

    # -- federation: local users' outbound device list stream --

    async def outbound_stream_id(self, user_id: str) -> int:
        """The stream_id of the last m.device_list_update sent for a local user (0: none)."""
        value = await self._db.fetchval(
            "SELECT stream_id FROM e2e_device_list_outbound WHERE user_id = $1", user_id)
        return 0 if value is None else int(value)

    async def set_outbound_stream_id(self, user_id: str, stream_id: int) -> None:
        await self._db.execute(
            "INSERT INTO e2e_device_list_outbound (user_id, stream_id) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id",
            user_id, stream_id,
        )

    # -- federation: cached device lists of remote users --

    async def get_remote_list(self, user_id: str) -> tuple[int, bool] | None:
        """(stream_id, stale) of a tracked remote user's cached list; None: not cached."""
        row = await self._db.fetchrow(
            "SELECT stream_id, stale FROM e2e_remote_device_lists WHERE user_id = $1", user_id)
        return None if row is None else (int(row["stream_id"]), bool(row["stale"]))

    async def list_remote_devices(self, user_id: str
                                  ) -> list[tuple[str, dict[str, Any] | None, str | None]]:
        """(device_id, keys or None, display name) of a remote user's cached devices."""
        rows = await self._db.fetch(
            "SELECT device_id, key_json, display_name FROM e2e_remote_devices"
            " WHERE user_id = $1 ORDER BY device_id",
            user_id,
        )
        return [(r["device_id"], None if r["key_json"] is None else dict(_loads(r["key_json"])),
                 r["display_name"]) for r in rows]

    @staticmethod
    def set_remote_list(user_id: str, stream_id: int, stale: bool) -> Statement:
        return Statement(
            "INSERT INTO e2e_remote_device_lists (user_id, stream_id, stale) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id,"
            " stale = excluded.stale",
            (user_id, stream_id, stale),
        )

    @staticmethod
    def mark_remote_stale(user_id: str) -> Statement:
        return Statement(
            "UPDATE e2e_remote_device_lists SET stale = TRUE WHERE user_id = $1", (user_id,))

    @staticmethod
    def put_remote_device(user_id: str, device_id: str, keys: dict[str, Any] | None,
                          display_name: str | None) -> Statement:
        return Statement(
            "INSERT INTO e2e_remote_devices (user_id, device_id, key_json, display_name)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, device_id) DO UPDATE SET"
            " key_json = excluded.key_json, display_name = excluded.display_name",
            (user_id, device_id, None if keys is None else _dumps(keys), display_name),
        )

    @staticmethod
    def delete_remote_device(user_id: str, device_id: str) -> Statement:
        return Statement(
            "DELETE FROM e2e_remote_devices WHERE user_id = $1 AND device_id = $2",
            (user_id, device_id))

    @staticmethod
    def forget_remote_statements(user_id: str) -> list[Statement]:
        """Stop caching a remote user's device list (their cross-signing keys stay: they are
        served only with a fresh list, and a resync replaces them)."""
        return [Statement(f"DELETE FROM {table} WHERE user_id = $1", (user_id,))
                for table in ("e2e_remote_devices", "e2e_remote_device_lists")]

    @staticmethod
    def delete_cross_signing_keys(user_id: str, key_types: Sequence[str]) -> Statement:
        return Statement(
            "DELETE FROM e2e_cross_signing_keys WHERE user_id = $1 AND key_type = $2",
            [(user_id, t) for t in key_types], many=True,
        )

    async def cached_room_members(self, room_id: str) -> list[str]:
        """Joined members of the room whose device list is cached here (remote users)."""
        rows = await self._db.fetch(
            "SELECT m.user_id FROM room_memberships m JOIN e2e_remote_device_lists l"
            " ON l.user_id = m.user_id WHERE m.room_id = $1 AND m.membership = 'join'",
            room_id,
        )
        return [r["user_id"] for r in rows]
