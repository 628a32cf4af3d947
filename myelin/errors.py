"""Matrix errors: one exception type that every layer raises and the HTTP edge renders.

Client-server API, "Standard error response": every failure is a JSON object with an
``errcode`` and a human-readable ``error``, sent with the status code the spec gives for it.
Raising these anywhere below the edge keeps services free of HTTP details while still letting
them choose the spec's errcode.
"""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    """A failure the client is meant to see, rendered as ``{"errcode", "error", **extra}``."""

    def __init__(
        self,
        status: int,
        errcode: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}

    def __repr__(self) -> str:
        return f"MatrixError({self.status}, {self.errcode!r}, {self.message!r})"


# The common cases get names so call sites read as intent, not as numbers.


def unrecognized(message: str = "Unrecognized request", status: int = 404) -> MatrixError:
    return MatrixError(status, "M_UNRECOGNIZED", message)


def not_found(message: str = "Not found") -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", message)


def forbidden(message: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", message)


def not_json(message: str = "Content not JSON.") -> MatrixError:
    return MatrixError(400, "M_NOT_JSON", message)


def bad_json(message: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", message)


def invalid_param(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


def missing_param(message: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", message)


def missing_token(message: str = "Missing access token.") -> MatrixError:
    return MatrixError(401, "M_MISSING_TOKEN", message)


def unknown_token(
    message: str = "Unrecognised access token.", soft_logout: bool = False
) -> MatrixError:
    if soft_logout:
        return MatrixError(401, "M_UNKNOWN_TOKEN", message, soft_logout=True)
    return MatrixError(401, "M_UNKNOWN_TOKEN", message)


def too_large(message: str = "Request body too large.") -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", message)


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    # Client-server API, "Rate limiting": Retry-After header (seconds, rounded up) plus the
    # deprecated retry_after_ms body field that older clients still read.
    seconds = max(1, -(-retry_after_ms // 1000))
    return MatrixError(
        429,
        "M_LIMIT_EXCEEDED",
        "Too many requests",
        headers={"Retry-After": str(seconds)},
        retry_after_ms=retry_after_ms,
    )
