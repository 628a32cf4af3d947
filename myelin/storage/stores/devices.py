"""Devices (table ``devices``); deleting one deletes its tokens in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass

from myelin.storage.database import Database


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
                # Pushers set up from this device go with it, as Synapse does: nobody would
                # receive those notifications any more.
                await txn.execute(
                    "DELETE FROM pushers WHERE user_id = $1 AND device_id = $2",
                    user_id, device_id,
                )
                await txn.execute(  # undeliverable once the device is gone
                    "DELETE FROM to_device_messages WHERE user_id = $1 AND device_id = $2",
                    user_id, device_id,
                )
                await txn.execute(
                    "DELETE FROM devices WHERE user_id = $1 AND device_id = $2", user_id, device_id
                )
        return hashes
