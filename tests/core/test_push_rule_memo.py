"""One event evaluated for many recipients shares condition outcomes through a memo, and
whole outcomes between rulesets that differ only by their owner (``EventEvaluation``): the
result must be exactly what evaluating each recipient alone gives."""

from __future__ import annotations

from typing import Any

import pytest

from myelin.core.push_rules import (
    EventEvaluation,
    PushContext,
    PushRule,
    RuleSetting,
    build_ruleset,
    condition_key,
    evaluate_for_user,
    notifies,
    tweaks,
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
    {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "hi",
                                           "m.mentions": {"user_ids": [USERS[0].upper()]}}},
    {"type": "m.room.member", "state_key": USERS[1].upper(),
     "content": {"membership": "invite"}},
    {"type": "m.room.member", "state_key": SENDER, "content": {"membership": "join"}},
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


@pytest.mark.parametrize("member_count", [2, 5])
@pytest.mark.parametrize("sender_level", [0, 100])
def test_shared_outcomes_equal_evaluating_alone(member_count: int, sender_level: int) -> None:
    users = [*USERS, *(f"@more{i}:example.org" for i in range(5))]
    extra = {"@more4:example.org": {("override", ".m.rule.suppress_notices"):
                                    RuleSetting(enabled=False)}}
    rulesets = {u: build_ruleset(u, own_rules(u) if u in USERS else [], extra.get(u, {}))
                for u in users}
    for body in EVENTS:
        event = {"sender": SENDER, "room_id": ROOM, **body}
        contexts = {u: PushContext(u, member_count, display_name=f"Name{i}",
                                   sender_power_level=sender_level)
                    for i, u in enumerate(users)}
        evaluation = EventEvaluation(event)
        for u in users:
            alone = evaluate_for_user(rulesets[u], event, contexts[u])
            outcome = evaluation.outcome(rulesets[u], u, lambda c=contexts[u]: c)
            assert outcome.actions == alone, (event, u)
            assert outcome.notify == notifies(alone)
            assert outcome.highlight == bool(tweaks(alone).get("highlight"))


def test_only_one_evaluation_per_template_on_an_event_naming_nobody() -> None:
    users = [f"@u{i}:example.org" for i in range(10)]
    rulesets = [build_ruleset(u, [], {}) for u in users]
    assert len({r.template for r in rulesets}) == 1
    event = {"sender": SENDER, "room_id": ROOM, "type": "m.room.message",
             "content": {"msgtype": "m.text", "body": "hello",
                         "m.mentions": {"user_ids": [users[3]]}}}
    built: list[str] = []

    def context(user_id: str) -> PushContext:
        built.append(user_id)
        return PushContext(user_id, 10)

    evaluation = EventEvaluation(event)
    outcomes = [evaluation.outcome(r, u, lambda u=u: context(u))
                for u, r in zip(users, rulesets, strict=True)]
    assert built == [users[0], users[3]]  # the first ordinary recipient, then the mentioned
    assert outcomes[3].highlight and not outcomes[0].highlight
    assert all(o.notify for o in outcomes)


def test_rulesets_that_cannot_share() -> None:
    assert build_ruleset(USERS[3], own_rules(USERS[3]), {}).template is None  # display name
    assert build_ruleset("@a*:example.org", [], {}).template is None  # glob characters
    # Different own rules, or a changed default, give a different template.
    plain = build_ruleset(USERS[0], [], {}).template
    assert build_ruleset(USERS[4], own_rules(USERS[4]), {}).template != plain
    muted = build_ruleset(USERS[1], [], {("override", ".m.rule.master"):
                                         RuleSetting(enabled=True)})
    assert muted.template != plain
    # A literal value that happens to spell the placeholder is not the owner: the same
    # literal rule shares a template across users, and differs from a rule naming the owner.
    literal = PushRule("override", "x", ("notify",), conditions=(
        {"kind": "event_match", "key": "state_key", "pattern": "<owner>"},))
    assert (build_ruleset(USERS[0], [literal], {}).template
            == build_ruleset(USERS[1], [literal], {}).template)
    mine = PushRule("override", "x", ("notify",), conditions=(
        {"kind": "event_match", "key": "state_key", "pattern": USERS[0]},))
    assert (build_ruleset(USERS[0], [mine], {}).template
            != build_ruleset(USERS[0], [literal], {}).template)
