"""Account registration: open or token-gated /register, guests, and Synapse-style shared-secret
registration for admin tooling (client-server API, "Account registration").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from myelin.config import RegistrationConfig
from myelin.errors import MatrixError, forbidden, missing_param
from myelin.services.auth import AuthService, Session
from myelin.services.ratelimit import RateLimiter
from myelin.services.uia import UiaService, UiaSession

NONCE_LIFETIME_S = 60
STAGE_DUMMY = "m.login.dummy"
STAGE_TOKEN = "m.login.registration_token"


@dataclass(frozen=True)
class Registered:
    user_id: str
    session: Session | None  # None when the client asked for inhibit_login


class RegistrationService:
    def __init__(
        self, auth: AuthService, uia: UiaService, config: RegistrationConfig, server_name: str,
        rate_limiter: RateLimiter,
    ) -> None:
        self._auth = auth
        self._rate_limiter = rate_limiter
        self._uia = uia
        self._config = config
        self._server_name = server_name
        self._nonces: dict[str, float] = {}

    # -- names --

    async def check_username(self, username: str) -> str:
        """The localpart ``username`` asks for, lower-cased as the spec requires; 400 if it is
        malformed (M_INVALID_USERNAME) or taken (M_USER_IN_USE)."""
        localpart = username.lower()
        if not await self._auth.is_localpart_available(localpart):
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")
        return localpart

    async def _fresh_localpart(self) -> str:
        while True:
            localpart = "u" + secrets.token_hex(5)
            if await self._auth.is_localpart_available(localpart):
                return localpart

    # -- POST /register --

    def flows(self) -> list[list[str]]:
        return [[STAGE_TOKEN]] if self._config.tokens else [[STAGE_DUMMY]]

    async def register_user(
        self,
        *,
        username: str | None,
        password: str | None,
        auth: Mapping[str, Any] | None,
        device_id: str | None,
        device_display_name: str | None,
        inhibit_login: bool,
        client_ip: str,
        refreshable: bool = False,
    ) -> Registered:
        if not self._config.enabled:
            raise forbidden("Registration has been disabled")
        # Fail fast on a bad or taken name, before the client works through auth stages.
        localpart = await self.check_username(username) if username else None
        session = await self._uia.authenticate(
            auth, endpoint="register", user_id=None, flows=self.flows(),
            checkers={STAGE_DUMMY: _accept, STAGE_TOKEN: self._check_token},
        )
        if password is None:
            raise missing_param("'password' is required")
        # Counted per account created, not per auth round trip (as Synapse does).
        self._rate_limiter.check("registration", client_ip)
        if localpart is None:
            localpart = await self._fresh_localpart()
        user_id = await self._auth.register(localpart, password)
        self._uia.finish(session)
        if inhibit_login:
            return Registered(user_id, None)
        login = await self._auth.create_session(
            user_id, device_id=device_id, display_name=device_display_name,
            refreshable=refreshable,
        )
        return Registered(user_id, login)

    async def register_guest(self, *, device_display_name: str | None,
                             client_ip: str) -> Registered:
        if not self._config.allow_guests:
            raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled")
        self._rate_limiter.check("registration", client_ip)
        user_id = await self._auth.register(await self._fresh_localpart(), None, guest=True)
        login = await self._auth.create_session(user_id, device_id=None,
                                                display_name=device_display_name)
        return Registered(user_id, login)

    def is_valid_token(self, token: str) -> bool:
        return any(hmac.compare_digest(token, t) for t in self._config.tokens)

    async def _check_token(self, auth: Mapping[str, Any], session: UiaSession) -> None:
        token = auth.get("token")
        if not isinstance(token, str) or not self.is_valid_token(token):
            raise MatrixError(401, "M_FORBIDDEN", "Invalid registration token")

    # -- /_synapse/admin/v1/register --

    def new_nonce(self) -> str:
        self._require_shared_secret()
        now = time.monotonic()
        for nonce in [n for n, t in self._nonces.items() if now - t > NONCE_LIFETIME_S]:
            del self._nonces[nonce]
        nonce = secrets.token_hex(32)
        self._nonces[nonce] = now
        return nonce

    async def register_with_shared_secret(
        self, *, nonce: str, username: str, password: str, admin: bool, mac: str,
        user_type: str | None,
    ) -> Session:
        """Synapse's admin registration: HMAC-SHA1 over nonce, user, password and admin flag,
        keyed with ``registration.shared_secret``; each nonce works once."""
        secret = self._require_shared_secret()
        issued = self._nonces.pop(nonce, None)
        if issued is None or time.monotonic() - issued > NONCE_LIFETIME_S:
            raise MatrixError(400, "M_UNKNOWN", "Unrecognised nonce")
        parts = [nonce, username, password, "admin" if admin else "notadmin"]
        if user_type is not None:
            parts.append(user_type)
        expected = hmac.new(secret.encode(), "\x00".join(parts).encode(), hashlib.sha1)
        if not hmac.compare_digest(expected.hexdigest(), mac.lower()):
            raise forbidden("HMAC incorrect")
        localpart = await self.check_username(username)
        user_id = await self._auth.register(localpart, password, admin=admin)
        return await self._auth.create_session(user_id, device_id=None, display_name=None)

    def _require_shared_secret(self) -> str:
        if not self._config.shared_secret:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        return self._config.shared_secret


async def _accept(auth: Mapping[str, Any], session: UiaSession) -> None:
    """m.login.dummy: nothing to prove."""
