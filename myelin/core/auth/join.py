"""m.room.member with membership "join" (rule 5.2 of v1-v5, 4.2 of v6-v7, 4.3 of v8-v11,
5.3 of v12), including restricted and knock_restricted joins."""

from __future__ import annotations

from myelin.core.auth.context import AuthContext

_INVITED_OR_JOINED = ("invite", "join")


def check_join(ctx: AuthContext) -> str:
    """Returns the number of the allowing rule; raises AuthError."""
    event, version = ctx.event, ctx.version
    create = ctx.create
    assert create is not None  # check_create_event_link ran first
    # .1: "If the only previous event is an m.room.create and the state_key is the creator,
    # allow." v1-v10: content.creator; v11+: "the sender of the m.room.create" (in v12 that
    # is not every creator: additional_creators join like anyone else).
    creator = create.sender if version.implicit_room_creator else create.content.get("creator")
    if event.prev_event_ids == [create.event_id] and event.state_key == creator:
        return ctx.rule("member.join.creator")
    # .2: "If the sender does not match state_key, reject."
    if event.sender != event.state_key:
        ctx.reject("member.join.not_self", "a user can only join as themselves")
    membership = ctx.membership(event.sender)
    # .3: "If the sender is banned, reject."
    if membership == "ban":
        ctx.reject("member.join.banned", "the sender is banned")
    join_rule = ctx.join_rule
    # .4: "If the join_rule is invite (v7+: or knock) then allow if membership state is
    # invite or join."
    invite_rules = ("invite", "knock") if version.knocking else ("invite",)
    if join_rule in invite_rules and membership in _INVITED_OR_JOINED:
        return ctx.rule("member.join.invite_rule")
    # .5 (v8+): "If the join_rule is restricted (v10+: or knock_restricted)".
    restricted_rules = {"restricted"} if version.restricted_join_rule else set()
    if version.knock_restricted_join_rule:
        restricted_rules.add("knock_restricted")
    if join_rule in restricted_rules:
        return _check_restricted_join(ctx, membership)
    # .6: "If the join_rule is public, allow."
    if join_rule == "public":
        return ctx.rule("member.join.public")
    # .7 (.6 before v8): "Otherwise, reject."
    ctx.reject("member.join.reject", f"join rule {join_rule!r} does not let the sender join")


def _check_restricted_join(ctx: AuthContext, membership: str | None) -> str:
    # .5.1: "If membership state is join or invite, allow."
    if membership in _INVITED_OR_JOINED:
        return ctx.rule("member.join.restricted.member")
    # .5.2: "If the join_authorised_via_users_server key in content is not a user with
    # sufficient permission to invite other users or is not a joined member of the room,
    # reject."
    via = ctx.event.content.get("join_authorised_via_users_server")
    power = ctx.power
    if (
        not isinstance(via, str)
        or ctx.membership(via) != "join"
        or power.user_level(via) < power.level("invite")
    ):
        ctx.reject(
            "member.join.restricted.authoriser",
            "join_authorised_via_users_server is not a joined user able to invite",
        )
    # .5.3: "Otherwise, allow."
    return ctx.rule("member.join.restricted.allow")
