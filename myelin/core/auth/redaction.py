"""Redactions: auth rule 11 of room versions 1-2, and "Handling redactions" from v3
(rooms/fragments/v3-handling-redactions.md)."""

from __future__ import annotations

from collections.abc import Mapping

from myelin.core.auth.context import AuthContext
from myelin.core.auth.identifiers import domain_of
from myelin.core.auth.levels import PowerLevels
from myelin.core.events import PDU, StateKey


def check_redaction(ctx: AuthContext) -> str:
    """Rule 11 of v1-v2, "If type is m.room.redaction". Returns the allowing rule's number.

    From v3 the rule is gone: the redact level is not considered by the auth rules, and
    ``redaction_applies`` decides whether an authorised redaction takes effect.
    """
    event, power = ctx.event, ctx.power
    # 11.1: "If the sender's power level is greater than or equal to the redact level, allow."
    if power.user_level(event.sender) >= power.level("redact"):
        return ctx.rule("redaction.redact_level")
    # 11.2: "If the domain of the event_id of the event being redacted is the same as the
    # domain of the event_id of the m.room.redaction, allow."
    redacted_domain = domain_of(event.redacts)
    if redacted_domain is not None and redacted_domain == domain_of(event.event_id):
        return ctx.rule("redaction.same_domain")
    # 11.3: "Otherwise, reject."
    ctx.reject("redaction.reject", "the sender may not redact that event")


def redaction_applies(
    redaction: PDU, original: PDU, auth_state: Mapping[StateKey, PDU]
) -> bool:
    """Whether an accepted ``redaction`` of ``original`` should be applied (and sent to
    clients), judged against ``auth_state`` (the redaction's auth state, for its sender's
    power level and the redact level).

    v3+, "Handling redactions": apply it if the redaction's sender has at least the redact
    level, or if its sender's domain matches that of the original event's sender. In v1-v2
    the same decision was made by auth rule 11 (redact level or event-ID domains), so an
    accepted redaction applies. It never applies to an event other than the one it names.
    """
    if redaction.redacts != original.event_id:
        return False
    version = redaction.room_version
    if version.redaction_auth_rule:
        return True
    power = PowerLevels.from_state(auth_state, version)
    # 1. "The power level of the redaction event's sender is greater than or equal to the
    #    redact level."
    if power.user_level(redaction.sender) >= power.level("redact"):
        return True
    # 2. "The domain of the redaction event's sender matches that of the original event's
    #    sender."
    return domain_of(redaction.sender) == domain_of(original.sender)
