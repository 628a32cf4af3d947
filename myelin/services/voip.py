"""TURN credentials for calls (client-server API, "Voice over IP", GET /voip/turnServer).

With a shared secret the credentials are time-limited, in the scheme of coturn's REST API
(``use-auth-secret``): the username is ``"<expiry, unix seconds>:<user ID>"`` and the password
the base64 of HMAC-SHA1(secret, username), so the TURN server checks them without asking us.
Without a secret, fixed credentials from the config are handed out; with neither, or with no
TURN URIs, the answer is ``{}`` (as Synapse).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from myelin.config import VoipConfig
from myelin.errors import MatrixError
from myelin.services.auth import Requester


def turn_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class VoipService:
    def __init__(self, config: VoipConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock

    def turn_server(self, requester: Requester) -> dict[str, Any]:
        config = self._config
        if requester.is_guest and not config.turn_allow_guests:
            raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN",
                              "Guests may not use this server's TURN servers")
        if not config.turn_uris:
            return {}
        lifetime = config.turn_user_lifetime_s
        if config.turn_shared_secret:
            username = f"{int(self._clock()) + lifetime}:{requester.user_id}"
            password = turn_password(config.turn_shared_secret, username)
        elif config.turn_username and config.turn_password:
            username, password = config.turn_username, config.turn_password
        else:
            return {}
        return {"username": username, "password": password, "uris": list(config.turn_uris),
                "ttl": lifetime}
