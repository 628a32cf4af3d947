"""Access and refresh tokens (tables ``access_tokens`` and ``refresh_tokens``), by SHA-256.

A session (device plus tokens) is written in one transaction: a login either produces a
usable session or leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from myelin.storage.database import Database, Queryable


@dataclass(frozen=True, slots=True)
class TokenRecord:
    user_id: str
    device_id: str
    expires_ts: int | None
    refresh_sha256: str | None
    is_admin: bool
    is_guest: bool
    deactivated: bool


class TokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_session(
        self,
        user_id: str,
        device_id: str,
        access_sha256: str,
        *,
        display_name: str | None,
        now_ts: int,
        expires_ts: int | None = None,
        refresh_sha256: str | None = None,
    ) -> None:
        """Create the device (or keep an existing one of that ID) and give it new tokens."""
        async with self._db.transaction() as txn:
            await txn.execute(
                "INSERT INTO devices (user_id, device_id, display_name, created_ts)"
                " VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (user_id, device_id) DO UPDATE"
                " SET display_name = COALESCE(excluded.display_name, devices.display_name)",
                user_id, device_id, display_name, now_ts,
            )
            await _insert_tokens_txn(txn, user_id, device_id, access_sha256, now_ts, expires_ts,
                                     refresh_sha256, previous_refresh=None)

    async def get_token(self, access_sha256: str) -> TokenRecord | None:
        row = await self._db.fetchrow(
            "SELECT t.user_id, t.device_id, t.expires_ts, t.refresh_sha256, u.is_admin,"
            " u.is_guest, u.deactivated"
            " FROM access_tokens t JOIN users u ON u.user_id = t.user_id"
            " WHERE t.token_sha256 = $1",
            access_sha256,
        )
        if row is None:
            return None
        return TokenRecord(
            row["user_id"], row["device_id"], row["expires_ts"], row["refresh_sha256"],
            bool(row["is_admin"]), bool(row["is_guest"]), bool(row["deactivated"]),
        )

    async def refresh(
        self, old_refresh_sha256: str, access_sha256: str, refresh_sha256: str, *,
        now_ts: int, expires_ts: int | None,
    ) -> tuple[str, str] | None:
        """Issue a new token pair for the session of ``old_refresh_sha256``.

        Returns (user_id, device_id), or None if that refresh token is unknown. The old token
        stays valid (as the new one's predecessor) until the new pair is first used; the one
        before it is revoked now.
        """
        async with self._db.transaction() as txn:
            row = await txn.fetchrow(
                "SELECT user_id, device_id, previous_sha256 FROM refresh_tokens"
                " WHERE token_sha256 = $1",
                old_refresh_sha256,
            )
            if row is None:
                return None
            user_id, device_id = row["user_id"], row["device_id"]
            if row["previous_sha256"] is not None:
                await txn.execute("DELETE FROM refresh_tokens WHERE token_sha256 = $1",
                                  row["previous_sha256"])
                await txn.execute("UPDATE refresh_tokens SET previous_sha256 = NULL"
                                  " WHERE token_sha256 = $1", old_refresh_sha256)
            await _insert_tokens_txn(txn, user_id, device_id, access_sha256, now_ts, expires_ts,
                                     refresh_sha256, previous_refresh=old_refresh_sha256)
        return user_id, device_id

    async def retire_previous_refresh(self, refresh_sha256: str) -> None:
        """The pair issued with ``refresh_sha256`` has been used: its predecessor is revoked."""
        async with self._db.transaction() as txn:
            previous = await txn.fetchval(
                "SELECT previous_sha256 FROM refresh_tokens WHERE token_sha256 = $1",
                refresh_sha256,
            )
            if previous is not None:
                await txn.execute("DELETE FROM refresh_tokens WHERE token_sha256 = $1", previous)
                await txn.execute("UPDATE refresh_tokens SET previous_sha256 = NULL"
                                  " WHERE token_sha256 = $1", refresh_sha256)


async def _insert_tokens_txn(
    txn: Queryable, user_id: str, device_id: str, access_sha256: str, now_ts: int,
    expires_ts: int | None, refresh_sha256: str | None, *, previous_refresh: str | None,
) -> None:
    if refresh_sha256 is not None:
        await txn.execute(
            "INSERT INTO refresh_tokens (token_sha256, user_id, device_id, created_ts,"
            " previous_sha256) VALUES ($1, $2, $3, $4, $5)",
            refresh_sha256, user_id, device_id, now_ts, previous_refresh,
        )
    await txn.execute(
        "INSERT INTO access_tokens (token_sha256, user_id, device_id, created_ts, expires_ts,"
        " refresh_sha256) VALUES ($1, $2, $3, $4, $5, $6)",
        access_sha256, user_id, device_id, now_ts, expires_ts, refresh_sha256,
    )
