"""Devices and their access tokens (tables ``devices`` and ``access_tokens``).

A device and its first token are written in one transaction: a login either produces a usable
session or leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from myelin.storage.database import Database


@dataclass(frozen=True, slots=True)
class TokenRecord:
    user_id: str
    device_id: str
    expires_ts: int | None
    is_admin: bool
    is_guest: bool
    deactivated: bool


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None


class DeviceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert_device_with_token(
        self,
        user_id: str,
        device_id: str,
        token_sha256: str,
        *,
        display_name: str | None,
        now_ts: int,
        expires_ts: int | None = None,
    ) -> None:
        """Create the device (or keep an existing one of that ID) and give it a new token."""
        async with self._db.transaction() as txn:
            await txn.execute(
                "INSERT INTO devices (user_id, device_id, display_name, created_ts)"
                " VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (user_id, device_id) DO UPDATE"
                " SET display_name = COALESCE(excluded.display_name, devices.display_name)",
                user_id, device_id, display_name, now_ts,
            )
            await txn.execute(
                "INSERT INTO access_tokens (token_sha256, user_id, device_id, created_ts,"
                " expires_ts) VALUES ($1, $2, $3, $4, $5)",
                token_sha256, user_id, device_id, now_ts, expires_ts,
            )

    async def get_token(self, token_sha256: str) -> TokenRecord | None:
        row = await self._db.fetchrow(
            "SELECT t.user_id, t.device_id, t.expires_ts, u.is_admin, u.is_guest, u.deactivated"
            " FROM access_tokens t JOIN users u ON u.user_id = t.user_id"
            " WHERE t.token_sha256 = $1",
            token_sha256,
        )
        if row is None:
            return None
        return TokenRecord(
            row["user_id"], row["device_id"], row["expires_ts"], bool(row["is_admin"]),
            bool(row["is_guest"]), bool(row["deactivated"]),
        )

    async def delete_device(self, user_id: str, device_id: str) -> list[str]:
        """Delete the device and its tokens; returns the deleted tokens' hashes."""
        return await self.delete_devices(user_id, [device_id])

    async def list_devices(self, user_id: str) -> list[DeviceRecord]:
        rows = await self._db.fetch(
            "SELECT user_id, device_id, display_name, last_seen_ts, last_seen_ip"
            " FROM devices WHERE user_id = $1 ORDER BY device_id",
            user_id,
        )
        return [
            DeviceRecord(r["user_id"], r["device_id"], r["display_name"], r["last_seen_ts"],
                         r["last_seen_ip"])
            for r in rows
        ]

    async def get_device(self, user_id: str, device_id: str) -> DeviceRecord | None:
        r = await self._db.fetchrow(
            "SELECT user_id, device_id, display_name, last_seen_ts, last_seen_ip"
            " FROM devices WHERE user_id = $1 AND device_id = $2",
            user_id, device_id,
        )
        if r is None:
            return None
        return DeviceRecord(r["user_id"], r["device_id"], r["display_name"], r["last_seen_ts"],
                            r["last_seen_ip"])

    async def set_display_name(self, user_id: str, device_id: str, display_name: str) -> bool:
        return await self._db.execute(
            "UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2",
            user_id, device_id, display_name,
        ) == 1

    async def delete_devices(self, user_id: str, device_ids: list[str] | None,
                             *, keep: str | None = None) -> list[str]:
        """Delete the listed devices (all when None, except ``keep``) with their tokens.

        Returns the deleted tokens' hashes so the token cache can forget them.
        """
        async with self._db.transaction() as txn:
            rows = await txn.fetch(
                "SELECT device_id FROM devices WHERE user_id = $1", user_id
            )
            targets = [
                r["device_id"] for r in rows
                if (device_ids is None or r["device_id"] in device_ids) and r["device_id"] != keep
            ]
            hashes: list[str] = []
            for device_id in targets:
                deleted = await txn.fetch(
                    "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2"
                    " RETURNING token_sha256",
                    user_id, device_id,
                )
                hashes.extend(r["token_sha256"] for r in deleted)
                await txn.execute(
                    "DELETE FROM devices WHERE user_id = $1 AND device_id = $2", user_id, device_id
                )
        return hashes
