"""Event authorization rules of every room version (rooms/v1.md ... v12.md, "Authorization
rules"; server-server API, "Checks performed on receipt of a PDU" and "Auth events selection").

``check_auth`` runs the numbered rules in the spec's order; each rule family lives in its own
module. Rules are cited by their number in the event's room version (see ``rules.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from myelin.core.auth.aliases import check_aliases
from myelin.core.auth.common import (
    check_required_level,
    check_sender_joined,
    check_third_party_invite_event,
    check_user_state_key,
)
from myelin.core.auth.context import AuthContext
from myelin.core.auth.create import check_create, check_create_event_link, check_federate
from myelin.core.auth.errors import AuthError
from myelin.core.auth.levels import INFINITE, PowerLevels, user_power_level
from myelin.core.auth.member import check_member
from myelin.core.auth.power_levels import check_power_levels
from myelin.core.auth.redaction import check_redaction, redaction_applies
from myelin.core.auth.rules import rule_number
from myelin.core.auth.selection import auth_types_for_event, check_auth_events_list
from myelin.core.events import PDU, StateKey

__all__ = [
    "INFINITE",
    "AuthError",
    "PowerLevels",
    "auth_types_for_event",
    "authorising_rule",
    "check_auth",
    "check_auth_events_list",
    "redaction_applies",
    "rule_number",
    "user_power_level",
]


def check_auth(event: PDU, auth_state: Mapping[StateKey, PDU]) -> None:
    """The authorization rules of event.room_version against auth_state (the state the rules
    read: create, power levels, join rules, the sender's and target's membership, third-party
    invite...). auth_state always includes the create event under ("m.room.create", ""), also
    in v12 where the event's own auth_events must not list it. Raises AuthError; returns None
    when allowed.

    The rules about the event's own auth_events list (rule 2; 3 in v12) are
    ``check_auth_events_list``'s: they concern that list, not a state.
    """
    authorising_rule(event, auth_state)


def authorising_rule(event: PDU, auth_state: Mapping[StateKey, PDU]) -> str:
    """``check_auth``, returning the number of the rule that allowed the event (e.g. "5.2.5"
    for a join to a public v1 room, "10" for a v6 message)."""
    ctx = AuthContext(event, auth_state)
    version = event.room_version
    # Rule 1: "If type is m.room.create".
    if event.type == "m.room.create":
        return check_create(ctx)
    # v12 rule 2: the room_id names the accepted create event (before v12: it is present).
    check_create_event_link(ctx)
    # Rule 3 (4 in v12): m.federate.
    check_federate(ctx)
    # v1-v5 rule 4: "If type is m.room.aliases".
    if version.special_case_aliases_auth and event.type == "m.room.aliases":
        return check_aliases(ctx)
    # "If type is m.room.member".
    if event.type == "m.room.member":
        return check_member(ctx)
    # "If the sender's current membership state is not join, reject."
    check_sender_joined(ctx)
    # "If type is m.room.third_party_invite".
    if event.type == "m.room.third_party_invite":
        return check_third_party_invite_event(ctx)
    # "If the event type's required power level is greater than the sender's power level".
    check_required_level(ctx)
    # "If the event has a state_key that starts with an @ and does not match the sender".
    check_user_state_key(ctx)
    # "If type is m.room.power_levels".
    if event.type == "m.room.power_levels":
        return check_power_levels(ctx)
    # v1-v2 rule 11: "If type is m.room.redaction".
    if version.redaction_auth_rule and event.type == "m.room.redaction":
        return check_redaction(ctx)
    # "Otherwise, allow."
    return ctx.rule("allow")
