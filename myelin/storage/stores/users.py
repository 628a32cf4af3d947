"""Local user accounts (table ``users``)."""

from __future__ import annotations

from dataclasses import dataclass

from myelin.storage.database import Database, IntegrityError


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    password_hash: str | None
    is_admin: bool
    is_guest: bool
    deactivated: bool
    created_ts: int


class UserExistsError(Exception):
    """The user ID is already taken."""


class UserStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_user(
        self,
        user_id: str,
        password_hash: str | None,
        *,
        created_ts: int,
        is_admin: bool = False,
        is_guest: bool = False,
    ) -> None:
        try:
            await self._db.execute(
                "INSERT INTO users (user_id, password_hash, is_admin, is_guest, created_ts)"
                " VALUES ($1, $2, $3, $4, $5)",
                user_id, password_hash, is_admin, is_guest, created_ts,
            )
        except IntegrityError as e:
            raise UserExistsError(user_id) from e

    async def get_user(self, user_id: str) -> UserRecord | None:
        row = await self._db.fetchrow(
            "SELECT user_id, password_hash, is_admin, is_guest, deactivated, created_ts"
            " FROM users WHERE user_id = $1",
            user_id,
        )
        if row is None:
            return None
        return UserRecord(
            row["user_id"], row["password_hash"], bool(row["is_admin"]), bool(row["is_guest"]),
            bool(row["deactivated"]), row["created_ts"],
        )

    async def set_admin(self, user_id: str, is_admin: bool) -> bool:
        return await self._db.execute(
            "UPDATE users SET is_admin = $2 WHERE user_id = $1", user_id, is_admin
        ) == 1

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> bool:
        return await self._db.execute(
            "UPDATE users SET password_hash = $2 WHERE user_id = $1", user_id, password_hash
        ) == 1

    async def deactivate(self, user_id: str) -> None:
        """Mark the account deactivated and drop its password; its devices go separately."""
        await self._db.execute(
            "UPDATE users SET deactivated = TRUE, password_hash = NULL WHERE user_id = $1",
            user_id,
        )
