"""Rule 4 of room versions 1-5, "If type is m.room.aliases" (removed in v6: from then on
m.room.aliases events pass the rules of any other state event)."""

from __future__ import annotations

from myelin.core.auth.context import AuthContext
from myelin.core.auth.identifiers import domain_of


def check_aliases(ctx: AuthContext) -> str:
    """Returns the number of the allowing rule (4.3); raises AuthError."""
    event = ctx.event
    # 4.1: "If event has no state_key, reject."
    if not event.is_state:
        ctx.reject("aliases.no_state_key", "m.room.aliases without a state_key")
    # 4.2: "If sender's domain doesn't match state_key, reject."
    if domain_of(event.sender) != event.state_key:
        ctx.reject("aliases.domain", "the state_key is not the sender's domain")
    # 4.3: "Otherwise, allow."
    return ctx.rule("aliases.allow")
