"""User-interactive authentication (client-server API, "User-Interactive Authentication API").

Sessions live in memory: they last minutes, and losing them on restart only makes a client
start the flow again. A session is bound to the endpoint and user it was created for, so a
password typed to delete one device cannot be replayed to deactivate the account.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from myelin.errors import MatrixError

SESSION_LIFETIME_S = 15 * 60
_MAX_SESSIONS = 10_000

# A stage checker gets the client's auth dict and the session; it returns normally when the
# stage is complete and raises MatrixError (shown to the client inside the 401) when not.
StageChecker = Callable[[Mapping[str, Any], "UiaSession"], Awaitable[None]]


class UiaRequired(MatrixError):
    """The 401 that tells the client which stages remain (with errcode only after a failure)."""

    def __init__(self, body: dict[str, Any], failure: MatrixError | None = None) -> None:
        super().__init__(401, failure.errcode if failure else "",
                         failure.message if failure else "Additional authentication required")
        self.body = body
        self.failure = failure

    def to_json(self) -> dict[str, Any]:
        if self.failure is None:
            return self.body
        return {"errcode": self.failure.errcode, "error": self.failure.message, **self.body}


@dataclass
class UiaSession:
    session_id: str
    endpoint: str
    user_id: str | None
    flows: list[list[str]]
    created: float
    completed: list[str] = field(default_factory=list)
    # Facts established by stages, e.g. the registration token used.
    results: dict[str, Any] = field(default_factory=dict)


class UiaService:
    def __init__(self) -> None:
        self._sessions: dict[str, UiaSession] = {}

    async def authenticate(
        self,
        auth: Mapping[str, Any] | None,
        *,
        endpoint: str,
        user_id: str | None,
        flows: Sequence[Sequence[str]],
        checkers: Mapping[str, StageChecker],
        params: Mapping[str, Any] | None = None,
    ) -> UiaSession:
        """Advance the flow; return the session once one flow is complete, else raise 401."""
        flow_lists = [list(f) for f in flows]
        session = self._session_for(auth, endpoint, user_id, flow_lists)
        failure: MatrixError | None = None
        stage = auth.get("type") if auth else None
        if isinstance(stage, str) and stage not in session.completed:
            allowed = {s for f in flow_lists for s in f}
            checker = checkers.get(stage)
            if stage not in allowed or checker is None:
                failure = MatrixError(400, "M_UNRECOGNIZED", f"Unsupported auth stage {stage!r}")
            else:
                try:
                    await checker(auth or {}, session)
                except MatrixError as e:
                    failure = e
                else:
                    session.completed.append(stage)
        if any(all(s in session.completed for s in f) for f in flow_lists):
            return session
        body: dict[str, Any] = {
            "flows": [{"stages": f} for f in flow_lists],
            "params": dict(params or {}),
            "session": session.session_id,
        }
        if session.completed:
            body["completed"] = list(session.completed)
        raise UiaRequired(body, failure)

    def finish(self, session: UiaSession) -> None:
        """Forget a session whose request has been carried out."""
        self._sessions.pop(session.session_id, None)

    def _session_for(
        self, auth: Mapping[str, Any] | None, endpoint: str, user_id: str | None,
        flows: list[list[str]],
    ) -> UiaSession:
        now = time.monotonic()
        session_id = auth.get("session") if auth else None
        if isinstance(session_id, str) and session_id:
            session = self._sessions.get(session_id)
            if session is None or now - session.created > SESSION_LIFETIME_S:
                raise MatrixError(400, "M_UNKNOWN", "Unknown or expired auth session")
            if session.endpoint != endpoint or session.user_id != user_id:
                raise MatrixError(403, "M_FORBIDDEN", "Auth session belongs to another request")
            return session
        self._expire(now)
        session = UiaSession(secrets.token_urlsafe(24), endpoint, user_id, flows, now)
        self._sessions[session.session_id] = session
        return session

    def _expire(self, now: float) -> None:
        if len(self._sessions) < _MAX_SESSIONS:
            return
        for key in [k for k, s in self._sessions.items() if now - s.created > SESSION_LIFETIME_S]:
            del self._sessions[key]
        while len(self._sessions) >= _MAX_SESSIONS:  # still full: drop the oldest
            del self._sessions[next(iter(self._sessions))]
