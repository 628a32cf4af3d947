"""What every rule module reads: the event, the auth state, and how to cite a rule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NoReturn

from myelin.core.auth.errors import AuthError
from myelin.core.auth.levels import CREATE, PowerLevels
from myelin.core.auth.rules import rule_number
from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import RoomVersion

JOIN_RULES: StateKey = ("m.room.join_rules", "")


@dataclass
class AuthContext:
    event: PDU
    state: Mapping[StateKey, PDU]

    @property
    def version(self) -> RoomVersion:
        return self.event.room_version

    def rule(self, path: str) -> str:
        """The spec number of rule ``path`` in this event's room version."""
        return rule_number(self.version, path)

    def reject(self, path: str, message: str) -> NoReturn:
        raise AuthError(self.rule(path), message)

    @cached_property
    def create(self) -> PDU | None:
        return self.state.get(CREATE)

    @cached_property
    def power(self) -> PowerLevels:
        return PowerLevels.from_state(self.state, self.version)

    def membership(self, user_id: object) -> str | None:
        """The user's "current membership state": content.membership of their m.room.member
        event in the auth state, or None when they have none."""
        if not isinstance(user_id, str):
            return None
        event = self.state.get(("m.room.member", user_id))
        return event.membership if event is not None else None

    @cached_property
    def join_rule(self) -> str:
        """content.join_rule of m.room.join_rules.

        The spec gives no default; like every deployed server, a room without a join rule is
        treated as "invite", which only lets already invited or joined users join. A
        non-string value matches no rule ("").
        """
        event = self.state.get(JOIN_RULES)
        if event is None or "join_rule" not in event.content:
            return "invite"
        value = event.content["join_rule"]
        return value if isinstance(value, str) else ""
