"""One event evaluated for many recipients shares condition outcomes through a memo: the
result must be exactly what evaluating each recipient alone gives."""

from __future__ import annotations

from typing import Any

import pytest

from myelin.core.push_rules import (
    PushContext,
    PushRule,
    build_ruleset,
    condition_key,
    evaluate_for_user,
)

ROOM = "!room:example.org"
SENDER = "@sender:example.org"
USERS = [f"@user{i}:example.org" for i in range(6)]


def own_rules(user_id: str) -> list[PushRule]:
    """Users 0-2 have default rules only; the others add rules of their own, some of which
    share conditions with other users' rules (so the memo is hit across users)."""
    index = USERS.index(user_id)
    if index == 3:
        return [PushRule("override", "name", ("notify", {"set_tweak": "highlight"}),
                         conditions=({"kind": "contains_display_name"},))]
    if index == 4:
        return [PushRule("override", "quiet-notices", ("notify",),
                         conditions=({"kind": "event_match", "key": "content.msgtype",
                                      "pattern": "m.notice"},
                                     {"kind": "room_member_count", "is": ">2"}))]
    if index == 5:
        return [PushRule("content", "cake", ("notify",), pattern="cake"),
                PushRule("underride", "flag", ("notify",),
                         conditions=({"kind": "event_property_is", "key": "content.flag",
                                      "value": True},))]
    return []


EVENTS: list[dict[str, Any]] = [
    {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "hello Name3"}},
    {"type": "m.room.message", "content": {"msgtype": "m.notice", "body": "a notice"}},
    {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "cake!",
                                           "m.mentions": {"user_ids": [USERS[1]]}}},
    {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "x",
                                           "m.mentions": {"room": True}}},
    {"type": "m.room.member", "state_key": USERS[2], "content": {"membership": "invite"}},
    {"type": "org.example", "content": {"flag": True}},
    {"type": "org.example", "content": {"flag": "true"}},
    {"type": "m.room.encrypted", "content": {"ciphertext": "..."}},
]


@pytest.mark.parametrize("member_count", [2, 5])
@pytest.mark.parametrize("sender_level", [0, 100])
def test_memo_changes_no_outcome(member_count: int, sender_level: int) -> None:
    rulesets = {u: build_ruleset(u, own_rules(u), {}) for u in USERS}
    for body in EVENTS:
        event = {"sender": SENDER, "room_id": ROOM, **body}
        contexts = {u: PushContext(u, member_count, display_name=f"Name{i}",
                                   sender_power_level=sender_level)
                    for i, u in enumerate(USERS)}
        alone = [evaluate_for_user(rulesets[u], event, contexts[u]) for u in USERS]
        memo: dict[str, bool] = {}
        shared = [evaluate_for_user(rulesets[u], event, contexts[u], memo) for u in USERS]
        assert shared == alone, event
        assert memo  # the memo was used


def test_recipient_dependent_conditions_are_never_shared() -> None:
    assert condition_key({"kind": "contains_display_name"}) is None
    assert condition_key({"kind": "org.unknown"}) is None
    # Values that differ only in type are different conditions.
    is_true = {"kind": "event_property_is", "key": "content.flag", "value": True}
    is_text = {"kind": "event_property_is", "key": "content.flag", "value": "True"}
    assert condition_key(is_true) != condition_key(is_text)
    assert condition_key({"kind": "event_property_is", "key": "k"}) != \
        condition_key({"kind": "event_property_is", "key": "k", "value": None})


def test_rulesets_say_whether_they_read_display_names() -> None:
    assert not build_ruleset(USERS[0], [], {}).uses_display_name
    assert build_ruleset(USERS[3], own_rules(USERS[3]), {}).uses_display_name
    disabled = PushRule("override", "name", ("notify",), enabled=False,
                        conditions=({"kind": "contains_display_name"},))
    assert not build_ruleset(USERS[3], [disabled], {}).uses_display_name
