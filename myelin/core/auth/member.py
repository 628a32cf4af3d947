"""Rule "If type is m.room.member" (rule 5 of v1-v5 and v12, rule 4 of v6-v11).

The join rules live in ``join.py`` and the third-party invite rules in
``third_party_invite.py``; this module dispatches on the membership and holds the invite,
leave, ban and knock rules. Sub-rule numbers in comments are those of v1-v7; v8 inserts
rule .2 (join_authorised_via_users_server) and shifts the rest by one.
"""

from __future__ import annotations

from collections.abc import Mapping

from myelin.core.auth.context import AuthContext
from myelin.core.auth.identifiers import domain_of
from myelin.core.auth.join import check_join
from myelin.core.auth.third_party_invite import check_third_party_invite


def check_member(ctx: AuthContext) -> str:
    """Returns the number of the allowing rule; raises AuthError."""
    event, version = ctx.event, ctx.version
    # .1: "If there is no state_key property, or no membership property in content, reject."
    if not isinstance(event.state_key, str) or "membership" not in event.content:
        ctx.reject("member.malformed", "no state_key or no content.membership")
    # .2 (v8+): "If content has a join_authorised_via_users_server key: If the event is not
    # validly signed by the homeserver of the user ID denoted by the key, reject."
    if version.restricted_join_rule and "join_authorised_via_users_server" in event.content:
        _check_authorised_via_signed(ctx)
    membership = event.content["membership"]
    if membership == "join":
        return check_join(ctx)
    if membership == "invite":
        return _check_invite(ctx)
    if membership == "leave":
        return _check_leave(ctx)
    if membership == "ban":
        return _check_ban(ctx)
    if membership == "knock" and version.knocking:
        return _check_knock(ctx)
    # .6 (.7 in v7, .8 from v8): "Otherwise, the membership is unknown. Reject."
    ctx.reject("member.unknown", f"unknown membership {membership!r}")


def _check_authorised_via_signed(ctx: AuthContext) -> None:
    """Signatures are verified on receipt ("Checks performed on receipt of a PDU", step 2),
    which must include the server named here; this rule requires that a signature of that
    server is among the (already verified) signatures of the event."""
    server = domain_of(ctx.event.content["join_authorised_via_users_server"])
    all_signatures = ctx.event.signatures
    signatures = all_signatures.get(server) if server and isinstance(
        all_signatures, Mapping
    ) else None
    if not signatures or not isinstance(signatures, Mapping):
        ctx.reject(
            "member.authorised_via.unsigned",
            "not signed by the server of join_authorised_via_users_server",
        )


def _check_invite(ctx: AuthContext) -> str:
    """.3, "If membership is invite"."""
    event = ctx.event
    # .3.1: "If content has a third_party_invite property" (then .3.1.1-.3.1.8 decide).
    if "third_party_invite" in event.content:
        return check_third_party_invite(ctx, event.content["third_party_invite"])
    # .3.2: "If the sender's current membership state is not join, reject."
    if ctx.membership(event.sender) != "join":
        ctx.reject("member.invite.not_joined", "the sender is not joined")
    # .3.3: "If target user's current membership state is join or ban, reject."
    if ctx.membership(event.state_key) in ("join", "ban"):
        ctx.reject("member.invite.target", "the target is joined or banned")
    # .3.4: "If the sender's power level is greater than or equal to the invite level, allow."
    power = ctx.power
    if power.user_level(event.sender) >= power.level("invite"):
        return ctx.rule("member.invite.allow")
    # .3.5: "Otherwise, reject."
    ctx.reject("member.invite.reject", "the sender may not invite")


def _check_leave(ctx: AuthContext) -> str:
    """.4, "If membership is leave"."""
    event, power = ctx.event, ctx.power
    sender, target = event.sender, event.state_key
    assert target is not None  # check_member checked it
    # .4.1: "If the sender matches state_key, allow if and only if that user's current
    # membership state is invite or join" (v7+: "invite, join, or knock").
    if sender == target:
        may_leave = ("invite", "join", "knock") if ctx.version.knocking else ("invite", "join")
        if ctx.membership(sender) in may_leave:
            return ctx.rule("member.leave.self")
        ctx.reject("member.leave.self", "the sender is not invited, joined or knocking")
    # .4.2: "If the sender's current membership state is not join, reject."
    if ctx.membership(sender) != "join":
        ctx.reject("member.leave.not_joined", "the sender is not joined")
    sender_level = power.user_level(sender)
    # .4.3: "If the target user's current membership state is ban, and the sender's power
    # level is less than the ban level, reject."
    if ctx.membership(target) == "ban" and sender_level < power.level("ban"):
        ctx.reject("member.leave.target_banned", "unbanning needs the ban level")
    # .4.4: "If the sender's power level is greater than or equal to the kick level, and the
    # target user's power level is less than the sender's power level, allow."
    if sender_level >= power.level("kick") and power.user_level(target) < sender_level:
        return ctx.rule("member.leave.kick")
    # .4.5: "Otherwise, reject."
    ctx.reject("member.leave.reject", "the sender may not kick the target")


def _check_ban(ctx: AuthContext) -> str:
    """.5, "If membership is ban"."""
    event, power = ctx.event, ctx.power
    assert event.state_key is not None  # check_member checked it
    # .5.1: "If the sender's current membership state is not join, reject."
    if ctx.membership(event.sender) != "join":
        ctx.reject("member.ban.not_joined", "the sender is not joined")
    # .5.2: "If the sender's power level is greater than or equal to the ban level, and the
    # target user's power level is less than the sender's power level, allow."
    sender_level = power.user_level(event.sender)
    if sender_level >= power.level("ban") and power.user_level(event.state_key) < sender_level:
        return ctx.rule("member.ban.allow")
    # .5.3: "Otherwise, reject."
    ctx.reject("member.ban.reject", "the sender may not ban the target")


def _check_knock(ctx: AuthContext) -> str:
    """.6 (v7+), "If membership is knock"."""
    event, version = ctx.event, ctx.version
    # .6.1: "If the join_rule is anything other than knock (v10+: or knock_restricted),
    # reject."
    knock_rules = ("knock", "knock_restricted") if version.knock_restricted_join_rule else (
        "knock",
    )
    if ctx.join_rule not in knock_rules:
        ctx.reject("member.knock.join_rule", f"join rule {ctx.join_rule!r} forbids knocking")
    # .6.2: "If sender does not match state_key, reject."
    if event.sender != event.state_key:
        ctx.reject("member.knock.not_self", "a user can only knock as themselves")
    # .6.3: "If the sender's current membership is not ban, invite, or join, allow."
    if ctx.membership(event.sender) not in ("ban", "invite", "join"):
        return ctx.rule("member.knock.allow")
    # .6.4: "Otherwise, reject."
    ctx.reject("member.knock.reject", "the sender is banned, invited or joined")
