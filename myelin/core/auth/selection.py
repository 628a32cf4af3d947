"""Server-server API, "Auth events selection", and the rules about an event's own auth_events
(rule 2 in v1-v11, rule 3 in v12)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from myelin.core.auth.context import JOIN_RULES, AuthContext
from myelin.core.auth.levels import CREATE, POWER_LEVELS
from myelin.core.events import PDU, StateKey


def auth_types_for_event(event: PDU) -> list[StateKey]:
    """The (type, state_key) pairs an event's auth events are chosen from.

    Server-server API, "Auth events selection": none for m.room.create; otherwise the
    m.room.create event (not in v12, where the room ID stands for it), the current
    m.room.power_levels, the sender's m.room.member and, for m.room.member events, the
    target's m.room.member, m.room.join_rules (membership join, invite or knock), the
    m.room.third_party_invite named by content.third_party_invite.signed.token (invites),
    and the member event of content.join_authorised_via_users_server (joins, in room versions
    with restricted rooms). Each pair appears once.
    """
    if event.type == "m.room.create":
        return []
    version = event.room_version
    types: list[StateKey] = []
    if not version.room_id_from_create_event:
        types.append(CREATE)
    types += [POWER_LEVELS, ("m.room.member", event.sender)]
    state_key = event.state_key
    if event.type == "m.room.member" and isinstance(state_key, str):
        content, membership = event.content, event.membership
        types.append(("m.room.member", state_key))
        if membership in ("join", "invite", "knock"):
            types.append(JOIN_RULES)
        third_party = content.get("third_party_invite")
        if membership == "invite" and isinstance(third_party, dict):
            signed = third_party.get("signed")
            token = signed.get("token") if isinstance(signed, dict) else None
            if isinstance(token, str):
                types.append(("m.room.third_party_invite", token))
        via = content.get("join_authorised_via_users_server")
        if membership == "join" and version.restricted_join_rule and isinstance(via, str):
            types.append(("m.room.member", via))
    return list(dict.fromkeys(types))


def check_auth_events_list(
    event: PDU,
    auth_events: Sequence[PDU],
    *,
    rejected_event_ids: Collection[str] = frozenset(),
) -> dict[StateKey, PDU]:
    """Rule 2 (v1-v11) / rule 3 (v12), "Considering the event's auth_events".

    ``auth_events`` are the events named by ``event.auth_events``; ``rejected_event_ids``
    says which of them were themselves rejected (rule 2.3). Returns them keyed by
    (type, state_key). In v12 the create event is not among them (and must not be): add it
    to the result before calling ``check_auth``.

    An m.room.create event is decided by rule 1 alone, which comes first: its (empty)
    auth_events are not examined and the result is empty.
    """
    if event.type == "m.room.create":
        return {}
    ctx = AuthContext(event, {})
    allowed = set(auth_types_for_event(event))
    keyed: dict[StateKey, PDU] = {}
    # 2.1: "If there are duplicate entries for a given type and state_key pair, reject."
    for auth_event in auth_events:
        key = auth_event.state_tuple
        if not auth_event.is_state:
            continue  # not a state event at all: rule 2.2 rejects it
        if key in keyed:
            ctx.reject("auth_events.duplicates", f"two auth events for {key}")
        keyed[key] = auth_event
    # 2.2: entries not "specified by the auth events selection algorithm" (v12: which
    # never selects m.room.create) reject.
    for auth_event in auth_events:
        if not auth_event.is_state or auth_event.state_tuple not in allowed:
            ctx.reject(
                "auth_events.selection",
                f"{auth_event.event_id} ({auth_event.type}) is not a selectable auth event",
            )
    # 2.3: "If there are entries which were themselves rejected ... reject."
    for auth_event in auth_events:
        if auth_event.event_id in rejected_event_ids:
            ctx.reject("auth_events.rejected", f"auth event {auth_event.event_id} was rejected")
    # 2.4 (v1-v11): "If there is no m.room.create event among the entries, reject."
    if not event.room_version.room_id_from_create_event and CREATE not in keyed:
        ctx.reject("auth_events.no_create", "no m.room.create among the auth events")
    # 2.5 (3.4 in v12): "If any event in auth_events has a room_id which does not match that
    # of the event being authorised, reject."
    for auth_event in auth_events:
        if auth_event.room_id != event.room_id:
            ctx.reject(
                "auth_events.room_id", f"auth event {auth_event.event_id} is in another room"
            )
    return keyed
