"""The rules every event other than m.room.create and m.room.member passes (rules 6-9 of
v1-v5, 5-8 of v6-v11, 6-9 of v12)."""

from __future__ import annotations

from myelin.core.auth.context import AuthContext


def check_sender_joined(ctx: AuthContext) -> None:
    """"If the sender's current membership state is not join, reject.\""""
    if ctx.membership(ctx.event.sender) != "join":
        ctx.reject("sender_joined", "the sender is not joined to the room")


def check_third_party_invite_event(ctx: AuthContext) -> str:
    """"If type is m.room.third_party_invite: Allow if and only if sender's current power
    level is greater than or equal to the invite level.\""""
    power = ctx.power
    if power.user_level(ctx.event.sender) >= power.level("invite"):
        return ctx.rule("third_party_invite.invite_level")
    ctx.reject("third_party_invite.invite_level", "the sender may not invite")


def check_required_level(ctx: AuthContext) -> None:
    """"If the event type's required power level is greater than the sender's power level,
    reject.\""""
    event, power = ctx.event, ctx.power
    required = power.required_level(event.type, event.is_state)
    if required > power.user_level(event.sender):
        ctx.reject("required_level", f"{event.type} needs power level {required}")


def check_user_state_key(ctx: AuthContext) -> None:
    """"If the event has a state_key that starts with an @ and does not match the sender,
    reject.\""""
    state_key = ctx.event.state_key
    if isinstance(state_key, str) and state_key.startswith("@") and (
        state_key != ctx.event.sender
    ):
        ctx.reject("user_state_key", "state_key names another user")
