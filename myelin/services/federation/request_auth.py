"""Who is calling: the X-Matrix signatures on an incoming server-server request.

Server-server API, "Request Authentication": every request carries one ``Authorization:
X-Matrix`` header per signing key, each signing the method, the URI as sent, both server
names and the JSON body. Every header must name the same origin and, when it names a
destination, this server; every signature must verify with the origin's key as valid now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from myelin.core.x_matrix import XMatrixError, parse_authorization, verify_request
from myelin.errors import MatrixError
from myelin.services.federation.keyring import KeyNotFound, Keyring


def unauthorized(message: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", message)


class FederationAuthenticator:
    def __init__(self, keyring: Keyring, server_name: str) -> None:
        self._keyring = keyring
        self._server_name = server_name

    async def authenticate(self, method: str, uri: str, headers: Sequence[str],
                           content: Any) -> str:
        """The origin server of a correctly signed request; 401 M_UNAUTHORIZED otherwise."""
        signatures = [h for h in headers if h[:8].lower() == "x-matrix"]
        if not signatures:
            raise unauthorized("Missing X-Matrix Authorization header")
        try:
            parsed = [parse_authorization(h) for h in signatures]
        except XMatrixError as e:
            raise unauthorized(f"Malformed X-Matrix Authorization header: {e}") from None
        origins = {auth.origin for auth in parsed}
        if len(origins) != 1:
            raise unauthorized("X-Matrix headers name different origins")
        origin = origins.pop()
        if origin == self._server_name:
            raise unauthorized("Requests from this server's own name are not accepted")
        for auth in parsed:
            try:
                key = await self._keyring.get_verify_key(origin, auth.key_id, valid_at_ms=None)
                verify_request(auth, key, method, uri, content,
                               our_server_name=self._server_name)
            except KeyNotFound as e:
                raise unauthorized(f"Cannot get the signing key {auth.key_id} of {origin}: "
                                   f"{e}") from None
            except XMatrixError as e:
                raise unauthorized(f"Invalid X-Matrix signature: {e}") from None
        return origin
