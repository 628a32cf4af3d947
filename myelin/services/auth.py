"""Who is asking: access tokens, sessions and password login (client-server API,
"Client Authentication" and "Login").

Every authenticated request resolves its token here, so lookups are served from a bounded
in-process cache; logout and deactivation evict the entries they invalidate.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from myelin.errors import MatrixError, forbidden, unknown_token
from myelin.ids import UserID
from myelin.services.passwords import check_password, hash_password
from myelin.storage.stores.devices import DeviceStore
from myelin.storage.stores.tokens import TokenStore
from myelin.storage.stores.users import UserExistsError, UserStore

_CACHE_SIZE = 50_000
LOGIN_TOKEN_LIFETIME_MS = 120_000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Requester:
    user_id: str
    device_id: str
    is_admin: bool = False
    is_guest: bool = False


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None = None
    expires_in_ms: int | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_access_token() -> str:
    # "syt_"-style prefix helps secret scanners recognise leaked tokens.
    return "myt_" + secrets.token_urlsafe(32)


def new_refresh_token() -> str:
    return "myr_" + secrets.token_urlsafe(32)


def new_device_id() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(10))


class AuthService:
    def __init__(
        self,
        users: UserStore,
        devices: DeviceStore,
        tokens: TokenStore,
        *,
        server_name: str,
        bcrypt_rounds: int,
        refreshable_lifetime_ms: int,
    ) -> None:
        self._users = users
        self._devices = devices
        self._tokens = tokens
        self._refreshable_lifetime_ms = refreshable_lifetime_ms
        # login token -> (user ID, expiry): short-lived and single-use, so memory is enough.
        self._login_tokens: dict[str, tuple[str, float]] = {}
        self.on_devices_removed: list[Callable[[str, list[str]], Awaitable[None]]] = []
        self._server_name = server_name
        self._bcrypt_rounds = bcrypt_rounds
        self._cache: OrderedDict[str, tuple[Requester, int | None]] = OrderedDict()

    async def authenticate(self, access_token: str) -> Requester:
        """The requester behind ``access_token``, or 401 M_UNKNOWN_TOKEN."""
        key = token_hash(access_token)
        cached = self._cache.get(key)
        if cached is None:
            record = await self._tokens.get_token(key)
            if record is None or record.deactivated:
                raise unknown_token()
            if record.refresh_sha256 is not None:
                # First use of a refreshed pair: its predecessor refresh token is now revoked.
                await self._tokens.retire_previous_refresh(record.refresh_sha256)
            requester = Requester(record.user_id, record.device_id, record.is_admin,
                                  record.is_guest)
            cached = (requester, record.expires_ts)
            self._cache[key] = cached
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        requester, expires_ts = cached
        if expires_ts is not None and expires_ts <= now_ms():
            raise unknown_token("Access token has expired", soft_logout=True)
        return requester

    async def register(
        self, localpart: str, password: str | None, *, admin: bool = False, guest: bool = False
    ) -> str:
        """Create a local account; returns its user ID. 400 M_USER_IN_USE if taken."""
        user_id = str(UserID.for_new_local_user(localpart, self._server_name))
        password_hash = None
        if password is not None:
            password_hash = await hash_password(password, self._bcrypt_rounds)
        try:
            await self._users.insert_user(user_id, password_hash, created_ts=now_ms(),
                                          is_admin=admin, is_guest=guest)
        except UserExistsError:
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.") from None
        return user_id

    async def login_with_password(
        self, user_id: str, password: str, *, device_id: str | None, display_name: str | None,
        refreshable: bool = False,
    ) -> Session:
        """Check the password and open a session on a new or given device.

        Unknown user and wrong password give the same 403, so logins can't probe for accounts.
        """
        user = await self._users.get_user(user_id)
        ok = await check_password(password, user.password_hash if user else None)
        if user is None or not ok:
            raise forbidden("Invalid username or password")
        if user.deactivated:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
        return await self.create_session(user_id, device_id=device_id, display_name=display_name,
                                         refreshable=refreshable)

    async def create_session(
        self, user_id: str, *, device_id: str | None, display_name: str | None,
        refreshable: bool = False,
    ) -> Session:
        """A new device (or a new token for ``device_id``); with ``refreshable``, a short-lived
        access token plus a refresh token ("Refreshing access tokens")."""
        token = new_access_token()
        device_id = device_id or new_device_id()
        refresh = new_refresh_token() if refreshable else None
        now = now_ms()
        expires_ts = now + self._refreshable_lifetime_ms if refreshable else None
        await self._tokens.insert_session(
            user_id, device_id, token_hash(token), display_name=display_name, now_ts=now,
            expires_ts=expires_ts, refresh_sha256=token_hash(refresh) if refresh else None,
        )
        lifetime = self._refreshable_lifetime_ms if refreshable else None
        return Session(user_id, device_id, token, refresh, lifetime)

    async def refresh(self, refresh_token: str) -> Session:
        """POST /refresh: a new access and refresh token for the same device."""
        token, refresh = new_access_token(), new_refresh_token()
        now = now_ms()
        owner = await self._tokens.refresh(
            token_hash(refresh_token), token_hash(token), token_hash(refresh), now_ts=now,
            expires_ts=now + self._refreshable_lifetime_ms,
        )
        if owner is None:
            raise unknown_token("Unknown refresh token")
        return Session(owner[0], owner[1], token, refresh, self._refreshable_lifetime_ms)

    def new_login_token(self, user_id: str) -> tuple[str, int]:
        """A single-use m.login.token for ``user_id`` (client-server API, "POST
        /login/get_token"); returns it with its lifetime in ms."""
        now = time.monotonic()
        for key in [k for k, (_, exp) in self._login_tokens.items() if exp < now]:
            del self._login_tokens[key]
        token = "myl_" + secrets.token_urlsafe(32)
        self._login_tokens[token] = (user_id, now + LOGIN_TOKEN_LIFETIME_MS / 1000)
        return token, LOGIN_TOKEN_LIFETIME_MS

    async def login_with_token(
        self, login_token: str, *, device_id: str | None, display_name: str | None,
        refreshable: bool = False,
    ) -> Session:
        entry = self._login_tokens.pop(login_token, None)
        if entry is None or entry[1] < time.monotonic():
            raise forbidden("Invalid login token")
        return await self.create_session(entry[0], device_id=device_id,
                                         display_name=display_name, refreshable=refreshable)

    async def logout(self, requester: Requester) -> None:
        """Client-server API, "POST /logout": the device and all its tokens go."""
        self.forget(await self._devices.delete_device(requester.user_id, requester.device_id))
        await self.devices_removed(requester.user_id, [requester.device_id])

    async def logout_all(self, user_id: str, *, keep_device: str | None = None) -> None:
        """"POST /logout/all" (and password changes): every device but ``keep_device`` goes."""
        gone = [d.device_id for d in await self._devices.list_devices(user_id)
                if d.device_id != keep_device]
        self.forget(await self._devices.delete_devices(user_id, None, keep=keep_device))
        await self.devices_removed(user_id, gone)

    async def devices_removed(self, user_id: str, device_ids: list[str]) -> None:
        """Tell the services that keep per-device data (E2EE keys) that devices are gone."""
        if device_ids:
            for callback in self.on_devices_removed:
                await callback(user_id, device_ids)

    def forget(self, token_hashes: list[str]) -> None:
        """Drop revoked tokens from the cache so they stop working at once."""
        for hashed in token_hashes:
            self._cache.pop(hashed, None)

    async def check_user_password(self, user_id: str, password: str) -> bool:
        user = await self._users.get_user(user_id)
        if user is None or user.deactivated:
            return False
        return await check_password(password, user.password_hash)

    async def set_password(self, user_id: str, new_password: str) -> None:
        await self._users.set_password_hash(
            user_id, await hash_password(new_password, self._bcrypt_rounds)
        )

    async def deactivate(self, user_id: str) -> None:
        """The account can never log in again; its devices and tokens are deleted."""
        await self._users.deactivate(user_id)
        await self.logout_all(user_id)

    async def is_localpart_available(self, localpart: str) -> bool:
        user_id = str(UserID.for_new_local_user(localpart, self._server_name))
        return await self._users.get_user(user_id) is None
