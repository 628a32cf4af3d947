"""The rules about m.room.create: the create event itself (rule 1), the room's link to it
(v12 rule 2) and m.federate (rule 3; rule 4 in v12)."""

from __future__ import annotations

from myelin.core.auth.context import AuthContext
from myelin.core.auth.identifiers import domain_of, is_valid_user_id
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS


def check_create(ctx: AuthContext) -> str:
    """Rule 1, "If type is m.room.create" (v1-v10; changed in v11 and v12).

    Returns the number of the allowing rule; raises AuthError.
    """
    event, version = ctx.event, ctx.version
    # 1.1: "If it has any prev_events, reject."
    if event.data.get("prev_events"):
        ctx.reject("create.prev_events", "the create event has prev_events")
    if version.room_id_from_create_event:
        # 1.2 (v12): "If the event has a room_id, reject."
        if "room_id" in event.data:
            ctx.reject("create.room_id", "a v12 create event has no room_id")
    # 1.2 (v1-v11): "If the domain of the room_id does not match the domain of the sender".
    elif (room_domain := domain_of(event.data.get("room_id"))) is None or (
        room_domain != domain_of(event.sender)
    ):
        ctx.reject("create.room_id", "the room_id's domain is not the sender's")
    # 1.3: "If content.room_version is present and is not a recognised version, reject."
    if "room_version" in event.content:
        room_version = event.content["room_version"]
        if not isinstance(room_version, str) or room_version not in KNOWN_ROOM_VERSIONS:
            ctx.reject("create.room_version", f"unknown room version {room_version!r}")
    # 1.4 (v1-v10): "If content has no creator property, reject." (removed in v11)
    if not version.implicit_room_creator and "creator" not in event.content:
        ctx.reject("create.creator", "content has no creator")
    # 1.4 (v12): additional_creators must be an array of valid user IDs.
    if version.privileged_creators and "additional_creators" in event.content:
        extra = event.content["additional_creators"]
        if not isinstance(extra, list) or not all(is_valid_user_id(u) for u in extra):
            ctx.reject(
                "create.additional_creators", "additional_creators is not a list of user IDs"
            )
    # 1.5 (1.4 in v11): "Otherwise, allow."
    return ctx.rule("create.allow")


def check_create_event_link(ctx: AuthContext) -> None:
    """v12 rule 2: "If the event's room_id is not an event ID for an accepted (not rejected)
    m.room.create event, with the sigil ! instead of $, reject."

    Before v12 a missing create event fails rule 2.4 ("no m.room.create event among the
    entries"). Whether the create event was accepted is the caller's knowledge: a rejected
    create event must never be put in the auth state.
    """
    create = ctx.create
    if ctx.version.room_id_from_create_event:
        if create is None or ctx.event.room_id != "!" + create.event_id[1:]:
            ctx.reject("create_event", "the room_id does not name the room's create event")
    elif create is None:
        ctx.reject("auth_events.no_create", "no m.room.create event in the auth state")


def check_federate(ctx: AuthContext) -> None:
    """Rule 3 (4 in v12): "If the content of the m.room.create event in the room state has
    the property m.federate set to false, and the sender domain of the event does not match
    the sender domain of the create event, reject."
    """
    create = ctx.create
    assert create is not None  # check_create_event_link ran first
    if create.content.get("m.federate") is False and (
        domain_of(ctx.event.sender) != domain_of(create.sender)
    ):
        ctx.reject("federate", "the room does not federate with the sender's server")
