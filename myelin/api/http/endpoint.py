"""Per-endpoint metadata: what an API module declares, and what the router and dispatcher read.

An API module lists its endpoints with ``Routes`` decorators. Everything cross-cutting (which
auth applies, which rate-limit bucket, the request body's shape) is data on the endpoint, so the
dispatcher handles it once and a handler holds only the call into its service.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from myelin.api.http.request import MatrixRequest

Handler = Callable[["MatrixRequest"], Awaitable[Any]]


class Auth(enum.Enum):
    NONE = "none"  # never looks at a token
    OPTIONAL = "optional"  # a token, if given, must be valid
    USER = "user"  # a valid access token is required
    ADMIN = "admin"  # a valid access token of a server admin
    FEDERATION = "federation"  # an X-Matrix signature of another server (server-server API)


@dataclass(frozen=True)
class Endpoint:
    method: str
    paths: tuple[str, ...]
    handler: Handler
    name: str
    auth: Auth = Auth.USER
    rate_limit: str | None = None  # a field name of config.RateLimitsConfig
    body: Any = None  # None: body ignored; dict or a msgspec.Struct type: JSON body decoded into it
    body_optional: bool = False  # an empty body counts as {} instead of M_NOT_JSON


# Client-server endpoints that also existed under r0 are still served there: older clients and
# bots use it, and Synapse keeps it too.
CLIENT_VERSIONS = ("v3", "r0")


@dataclass
class Routes:
    """Collects one API module's endpoints; ``myelin.api.registry`` gathers all modules."""

    endpoints: list[Endpoint] = field(default_factory=list)

    def route(self, method: str, *paths: str, **meta: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            name = f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__}"
            self.endpoints.append(Endpoint(method, tuple(paths), handler, name, **meta))
            return handler

        return register

    def client(
        self, method: str, path: str, *, versions: tuple[str, ...] = CLIENT_VERSIONS, **meta: Any
    ) -> Callable[[Handler], Handler]:
        """A client-server endpoint: ``path`` is relative to ``/_matrix/client/<version>``."""
        paths = tuple(f"/_matrix/client/{v}{path}" for v in versions)
        return self.route(method, *paths, **meta)
