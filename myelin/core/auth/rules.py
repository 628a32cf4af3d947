"""The numbered list of authorization rules of each room version, as data.

The spec renumbers its rules between room versions (the m.room.member rules are rule 5 in
v1-v5, rule 4 in v6-v11 and rule 5 again in v12; v8 inserts 4.2 and shifts the rest), so code
names a rule by a stable dotted *path* ("member.join.banned") and this module turns the path
into the number the spec prints for the event's room version ("5.2.3", "4.3.3", ...).

The outline below mirrors, item for item, the rule lists of rooms/fragments/v1-auth-rules.md
(v1-v2), fragments/v3-auth-rules.md (v3-v5), rooms/v6.md, v7.md, fragments/v8-auth-rules.md
(v8-v9), v10.md, v11.md and v12.md. Numbers are those of the rendered spec: Markdown numbers a
list from its first item on, so the v12 items written "5." under rule 3 and the second "10."
under rule 10 render (and are cited here) as 3.4 and 10.11.
"""

from __future__ import annotations

from functools import cache

from myelin.core.room_versions import RoomVersion

Node = tuple[str, tuple["Node", ...]]


def _n(name: str, *children: Node | None) -> Node:
    return (name, tuple(c for c in children if c is not None))


def _if(flag: bool, node: Node) -> Node | None:
    return node if flag else None


def outline(v: RoomVersion) -> tuple[Node, ...]:
    """The rule tree of room version ``v``, in the spec's order."""
    allow, reject = _n("allow"), _n("reject")
    create = _n(
        "create",
        _n("prev_events"),
        # v1-v11: room_id domain must match sender's; v12: a create event has no room_id.
        _n("room_id"),
        _n("room_version"),
        _if(not v.implicit_room_creator, _n("creator")),  # removed in v11
        _if(v.privileged_creators, _n("additional_creators")),  # added in v12
        allow,
    )
    auth_events = _n(
        "auth_events",
        _n("duplicates"),
        _n("selection"),
        _n("rejected"),
        _if(not v.room_id_from_create_event, _n("no_create")),  # gone in v12
        _n("room_id"),
    )
    aliases = _n("aliases", _n("no_state_key"), _n("domain"), allow)
    join = _n(
        "join",
        _n("creator"),
        _n("not_self"),
        _n("banned"),
        _n("invite_rule"),
        _if(
            v.restricted_join_rule,
            _n("restricted", _n("member"), _n("authoriser"), allow),
        ),
        _n("public"),
        reject,
    )
    third_party = _n(
        "third_party",
        _n("banned"),
        _n("no_signed"),
        _n("signed_fields"),
        _n("mxid"),
        _n("no_invite_event"),
        _n("sender"),
        _n("signature", _n("public_key"), _n("public_keys")),
        reject,
    )
    member = _n(
        "member",
        _n("malformed"),
        _if(v.restricted_join_rule, _n("authorised_via", _n("unsigned"))),
        join,
        _n("invite", third_party, _n("not_joined"), _n("target"), allow, reject),
        _n("leave", _n("self"), _n("not_joined"), _n("target_banned"), _n("kick"), reject),
        _n("ban", _n("not_joined"), allow, reject),
        _if(v.knocking, _n("knock", _n("join_rule"), _n("not_self"), allow, reject)),
        _n("unknown"),
    )
    power_levels = _n(
        "power_levels",
        _if(v.integer_power_levels, _n("integer_fields")),
        _if(v.integer_power_levels, _n("integer_maps")),
        _n("users"),
        _if(v.privileged_creators, _n("creators")),
        _n("no_previous"),
        _n("fields", _n("current"), _n("new")),
        _n("maps_removed", _n("current")),
        _n("maps_added", _n("new")),
        _n("users_removed", _n("current")),
        _n("users_added", _n("new")),
        allow,
    )
    redaction = _n("redaction", _n("redact_level"), _n("same_domain"), reject)
    top = (
        create,
        _if(v.room_id_from_create_event, _n("create_event")),  # v12 rule 2
        auth_events,
        _n("federate"),
        _if(v.special_case_aliases_auth, aliases),
        member,
        _n("sender_joined"),
        _n("third_party_invite", _n("invite_level")),
        _n("required_level"),
        _n("user_state_key"),
        power_levels,
        _if(v.redaction_auth_rule, redaction),
        allow,
    )
    return tuple(node for node in top if node is not None)


@cache
def numbering(v: RoomVersion) -> dict[str, str]:
    """Every rule path of ``v`` mapped to its spec number, in the spec's order."""
    out: dict[str, str] = {}

    def walk(nodes: tuple[Node, ...], path: str, number: str) -> None:
        for index, (name, children) in enumerate(nodes, start=1):
            child_path = f"{path}.{name}" if path else name
            child_number = f"{number}.{index}" if number else str(index)
            out[child_path] = child_number
            walk(children, child_path, child_number)

    walk(outline(v), "", "")
    return out


def rule_number(v: RoomVersion, path: str) -> str:
    """The spec number of rule ``path`` in room version ``v``; KeyError if it has no such rule."""
    return numbering(v)[path]
