"""Push rule evaluation against the spec's predefined rules, conditions and matching rules."""

from __future__ import annotations

import math
from typing import Any

import pytest

from myelin.core.push_rules import (
    KINDS,
    PushContext,
    PushRule,
    RuleSetting,
    build_ruleset,
    condition_holds,
    default_rules,
    evaluate,
    evaluate_for_user,
    glob_matches,
    notification_levels,
    notifies,
    property_at,
    split_property_path,
    tweaks,
)

ME = "@alice:example.org"
OTHER = "@bob:example.org"
ROOM = "!room:example.org"

SOUND = {"set_tweak": "sound", "value": "default"}
HIGHLIGHT = {"set_tweak": "highlight"}


def message(body: str = "hello", /, **content: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "sender": OTHER, "room_id": ROOM,
            "content": {"msgtype": "m.text", "body": body, **content}}


def ctx(members: int = 5, **kw: Any) -> PushContext:
    return PushContext(user_id=ME, member_count=members, **kw)


DEFAULTS = build_ruleset(ME, [], {})


def rule_used(event: dict[str, Any], context: PushContext) -> str | None:
    """The ID of the first enabled matching rule: the spec's tables name rules, not actions."""
    for r in DEFAULTS:
        if r.enabled and evaluate([r], event, context) is not None:
            return r.rule_id
    return None


def test_default_ruleset_is_the_spec_list_in_order() -> None:
    rules = default_rules(ME)
    assert [r.rule_id for r in rules["override"]] == [
        ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me",
        ".m.rule.member_event", ".m.rule.is_user_mention", ".m.rule.is_room_mention",
        ".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ]
    assert [r.rule_id for r in rules["underride"]] == [
        ".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one",
        ".m.rule.message", ".m.rule.encrypted",
    ]
    assert rules["content"] == rules["room"] == rules["sender"] == ()
    assert all(r.default and r.rule_id.startswith(".") for k in KINDS for r in rules[k])
    assert [r.rule_id for r in rules["override"] if not r.enabled] == [".m.rule.master"]


def test_default_rule_json_matches_the_spec_definitions() -> None:
    by_id = {r.rule_id: r.to_json() for k in KINDS for r in default_rules(ME)[k]}
    assert by_id[".m.rule.master"] == {"rule_id": ".m.rule.master", "default": True,
                                       "enabled": False, "conditions": [], "actions": []}
    assert by_id[".m.rule.is_user_mention"] == {
        "rule_id": ".m.rule.is_user_mention", "default": True, "enabled": True,
        "conditions": [{"kind": "event_property_contains",
                        "key": "content.m\\.mentions.user_ids", "value": ME}],
        "actions": ["notify", SOUND, HIGHLIGHT],
    }
    assert by_id[".m.rule.invite_for_me"]["conditions"][2] == {
        "kind": "event_match", "key": "state_key", "pattern": ME}
    assert by_id[".m.rule.call"]["actions"] == ["notify", {"set_tweak": "sound", "value": "ring"}]
    assert by_id[".m.rule.encrypted_room_one_to_one"]["conditions"] == [
        {"kind": "room_member_count", "is": "2"},
        {"kind": "event_match", "key": "type", "pattern": "m.room.encrypted"}]
    assert by_id[".m.rule.suppress_edits"]["conditions"] == [
        {"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
         "value": "m.replace"}]


MENTION = {"m.mentions": {"user_ids": [ME]}}
ROOM_MENTION = {"m.mentions": {"room": True}}
MEMBER = {"type": "m.room.member", "sender": OTHER, "room_id": ROOM}


@pytest.mark.parametrize(("event", "context", "rule_id", "actions"), [
    (message(), ctx(), ".m.rule.message", ["notify"]),
    (message(), ctx(members=2), ".m.rule.room_one_to_one", ["notify", SOUND]),
    (message(msgtype="m.notice"), ctx(), ".m.rule.suppress_notices", []),
    (message(msgtype="m.notice", **MENTION), ctx(), ".m.rule.suppress_notices", []),
    (message(**MENTION), ctx(), ".m.rule.is_user_mention", ["notify", SOUND, HIGHLIGHT]),
    (message(**{"m.mentions": {"user_ids": [OTHER]}}), ctx(), ".m.rule.message", ["notify"]),
    (message(**{"m.mentions": {"user_ids": ME}}), ctx(), ".m.rule.message", ["notify"]),
    (message(**ROOM_MENTION), ctx(sender_power_level=50), ".m.rule.is_room_mention",
     ["notify", HIGHLIGHT]),
    (message(**ROOM_MENTION), ctx(sender_power_level=49), ".m.rule.message", ["notify"]),
    (message(**ROOM_MENTION), ctx(sender_power_level=math.inf), ".m.rule.is_room_mention",
     ["notify", HIGHLIGHT]),
    (message(**ROOM_MENTION), ctx(sender_power_level=10, notification_levels={"room": 10}),
     ".m.rule.is_room_mention", ["notify", HIGHLIGHT]),
    (message(**{"m.mentions": {"room": "true"}}), ctx(sender_power_level=100),
     ".m.rule.message", ["notify"]),
    (message(**{"m.mentions": {"room": 1}}), ctx(sender_power_level=100),
     ".m.rule.message", ["notify"]),
    # A legacy body mention no longer highlights (v1.17 removed the body rules).
    (message(f"hi {ME} and @room"), ctx(display_name="Alice"), ".m.rule.message", ["notify"]),
    ({**MEMBER, "state_key": ME, "content": {"membership": "invite"}}, ctx(),
     ".m.rule.invite_for_me", ["notify", SOUND]),
    ({**MEMBER, "state_key": OTHER, "content": {"membership": "invite"}}, ctx(),
     ".m.rule.member_event", []),
    ({**MEMBER, "state_key": OTHER, "content": {"membership": "join"}}, ctx(members=2),
     ".m.rule.member_event", []),
    ({"type": "m.room.tombstone", "state_key": "", "sender": OTHER,
      "content": {"replacement_room": "!new:x"}}, ctx(), ".m.rule.tombstone",
     ["notify", HIGHLIGHT]),
    ({"type": "m.room.tombstone", "state_key": "x", "sender": OTHER, "content": {}}, ctx(),
     None, None),
    ({"type": "m.room.tombstone", "sender": OTHER, "content": {}}, ctx(), None, None),
    ({"type": "m.reaction", "sender": OTHER, "content": {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": "$x", "key": "👍"}}}, ctx(members=2),
     ".m.rule.reaction", []),
    ({"type": "m.room.server_acl", "state_key": "", "sender": OTHER, "content": {}}, ctx(),
     ".m.rule.room.server_acl", []),
    (message("* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"},
                           "m.new_content": {"body": "fixed"}}), ctx(members=2),
     ".m.rule.suppress_edits", []),
    (message(**{"m.relates_to": {"rel_type": "m.thread", "event_id": "$x"}}), ctx(),
     ".m.rule.message", ["notify"]),
    ({"type": "m.call.invite", "sender": OTHER, "content": {}}, ctx(), ".m.rule.call",
     ["notify", {"set_tweak": "sound", "value": "ring"}]),
    ({"type": "m.room.encrypted", "sender": OTHER, "content": {}}, ctx(members=2),
     ".m.rule.encrypted_room_one_to_one", ["notify", SOUND]),
    ({"type": "m.room.encrypted", "sender": OTHER, "content": {}}, ctx(members=3),
     ".m.rule.encrypted", ["notify"]),
    ({"type": "m.room.topic", "state_key": "", "sender": OTHER, "content": {"topic": "x"}},
     ctx(), None, None),
])
def test_predefined_rules(event: dict[str, Any], context: PushContext, rule_id: str | None,
                          actions: list[Any] | None) -> None:
    assert rule_used(event, context) == rule_id
    assert evaluate(DEFAULTS, event, context) == actions
    assert evaluate_for_user(DEFAULTS, event, context) == (actions or [])


def test_own_events_never_notify() -> None:
    event = {**message(**MENTION), "sender": ME}
    assert evaluate(DEFAULTS, event, ctx()) is not None
    assert evaluate_for_user(DEFAULTS, event, ctx()) == []


def test_master_rule_when_enabled_wins_over_everything() -> None:
    own = PushRule("override", "mine", ("notify",), conditions=())
    ruleset = build_ruleset(ME, [own], {("override", ".m.rule.master"): RuleSetting(True)})
    assert [r.rule_id for r in ruleset.by_kind["override"]][:2] == [".m.rule.master", "mine"]
    assert evaluate_for_user(ruleset, message(**MENTION), ctx()) == []


@pytest.mark.parametrize(("rules", "expected"), [
    # Kinds in order: override, content, room, sender, underride.
    ([PushRule("underride", "u", ("u",)), PushRule("sender", OTHER, ("s",))], ["s"]),
    ([PushRule("sender", OTHER, ("s",)), PushRule("room", ROOM, ("r",))], ["r"]),
    ([PushRule("room", ROOM, ("r",)), PushRule("content", "c", ("c",), pattern="hello")], ["c"]),
    ([PushRule("content", "c", ("c",), pattern="hello"), PushRule("override", "o", ("o",))],
     ["o"]),
    # Within a kind, the given order; disabled rules are skipped.
    ([PushRule("override", "a", ("a",)), PushRule("override", "b", ("b",))], ["a"]),
    ([PushRule("override", "a", ("a",), enabled=False), PushRule("override", "b", ("b",))],
     ["b"]),
    # Rules that do not match fall through to the defaults.
    ([PushRule("room", "!other:x", ("r",)), PushRule("sender", "@x:y", ("s",)),
      PushRule("content", "c", ("c",), pattern="bye")], ["notify"]),
    # Historical actions are ignored.
    ([PushRule("room", ROOM, ("dont_notify", "coalesce"))], []),
    ([PushRule("room", ROOM, ("notify", "dont_notify", HIGHLIGHT))], ["notify", HIGHLIGHT]),
])
def test_user_rules_priority(rules: list[PushRule], expected: list[Any]) -> None:
    ruleset = build_ruleset(ME, rules, {})
    assert evaluate_for_user(ruleset, message("hello world"), ctx()) == expected


def test_user_rules_outrank_defaults_of_their_kind_and_settings_apply() -> None:
    mute_notices = PushRule("override", "x", ("notify",),
                            conditions=({"kind": "event_match", "key": "content.msgtype",
                                         "pattern": "m.notice"},))
    ruleset = build_ruleset(ME, [mute_notices], {
        ("underride", ".m.rule.message"): RuleSetting(actions=("notify", SOUND)),
        ("override", ".m.rule.suppress_edits"): RuleSetting(enabled=False),
    })
    assert evaluate_for_user(ruleset, message(msgtype="m.notice"), ctx()) == ["notify"]
    assert evaluate_for_user(ruleset, message(), ctx()) == ["notify", SOUND]
    edit = message(**{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}})
    assert evaluate_for_user(ruleset, edit, ctx()) == ["notify", SOUND]
    message_rule = ruleset.get("underride", ".m.rule.message")
    assert message_rule is not None and message_rule.default


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    # The spec's examples for event_match on content.topic (whole value).
    ("lunc?*", "Lunch plans", True),
    ("lunc?*", "LUNCH", True),
    ("lunc?*", " lunch", False),
    ("lunc?*", "lunc", False),
    ("m.room.message", "m.room.message", True),
    ("m.room.message", "m.room.messages", False),
    ("m.room.*", "m.room.message", True),
    ("m.room.*", "m.roomy", False),
    ("", "", True),
    ("", "x", False),
    ("*", "", True),
    ("a?c", "a\nc", True),
    ("[abc]", "a", False),  # only * and ? are special
    ("[abc]", "[ABC]", True),
    ("ÉCOLE", "école", True),
])
def test_glob_whole_value(pattern: str, value: str, expected: bool) -> None:
    assert glob_matches(pattern, value) is expected


@pytest.mark.parametrize(("pattern", "body", "expected"), [
    # The spec's examples for content.body (word-bounded substrings).
    ("ex*ple", "An example event.", True),
    ("ex*ple", "exple", True),
    ("ex*ple", "An exciting triple-whammy", True),
    ("cake", "I like CAKE!", True),
    ("cake", "cupcakes", False),
    ("cake", "cake_lover", False),  # "_" is a word character
    ("cake", "cake2", False),
    ("cake", "(cake)", True),
    ("cake*lie", "the cake is a lie", True),
    ("cake*lie", "the cake is a lie!", True),
    ("cake*lie", "the cake is a lies", False),
    ("ca?e", "a cafe here", True),
    ("@room", "hey @room", True),
    ("*", "anything", True),
    ("é", "café", True),  # non-ASCII letters are word boundaries by the spec's definition
])
def test_glob_body_words(pattern: str, body: str, expected: bool) -> None:
    assert glob_matches(pattern, body, words=True) is expected


def test_glob_is_linear_on_hostile_patterns() -> None:
    body = "a" * 20000
    assert not glob_matches("*a*a*a*a*a*a*a*a*b", body)
    assert not glob_matches("a*a*a*a*a*a*a*a*b", body, words=True)


def event_match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


EVENT: dict[str, Any] = {
    "type": "m.room.message", "sender": OTHER, "room_id": ROOM, "state_key": "",
    "content": {
        "body": "An example event.", "topic": None, "m.federate": True, "count": 3,
        "m.relates_to": {"rel_type": "m.replace"}, "m\\foo": "backslash", "a": {"b.c": "dot"},
        "big": 2**53, "list": ["#somewhere:example.org", "#myroom:example.com", 1, True, None,
                               {"x": 1}],
        "flt": 1.5,
    },
}


@pytest.mark.parametrize(("condition", "expected"), [
    (event_match("content.body", "ex*ple"), True),
    (event_match("content.body", "An example event."), True),
    (event_match("content.topic", "*"), False),  # null is not a string
    (event_match("content.missing", "*"), False),
    (event_match("content.m\\.federate", "*"), False),  # not a string
    (event_match("content.m\\.relates_to.rel_type", "M.REPLACE"), True),
    (event_match("content.m.relates_to.rel_type", "m.replace"), False),
    (event_match("content.m\\\\foo", "backslash"), True),
    (event_match("content.a.b\\.c", "dot"), True),
    (event_match("type", "m.room.*"), True),
    (event_match("state_key", ""), True),
    (event_match("content", "*"), False),
    ({"kind": "event_match", "key": "type"}, False),
    ({"kind": "event_property_is", "key": "content.m\\.federate", "value": True}, True),
    ({"kind": "event_property_is", "key": "content.m\\.federate", "value": "true"}, False),
    ({"kind": "event_property_is", "key": "content.m\\.federate", "value": 1}, False),
    ({"kind": "event_property_is", "key": "content.count", "value": 3}, True),
    ({"kind": "event_property_is", "key": "content.count", "value": True}, False),
    ({"kind": "event_property_is", "key": "content.count", "value": "3"}, False),
    ({"kind": "event_property_is", "key": "content.topic", "value": None}, True),
    ({"kind": "event_property_is", "key": "content.missing", "value": None}, False),
    ({"kind": "event_property_is", "key": "content.big", "value": 2**53}, False),
    ({"kind": "event_property_is", "key": "content.flt", "value": 1.5}, False),
    ({"kind": "event_property_is", "key": "content.a", "value": None}, False),
    ({"kind": "event_property_is", "key": "content.body"}, False),
    ({"kind": "event_property_contains", "key": "content.list",
      "value": "#myroom:example.com"}, True),
    ({"kind": "event_property_contains", "key": "content.list", "value": ":example.com"}, False),
    ({"kind": "event_property_contains", "key": "content.list", "value": 1}, True),
    ({"kind": "event_property_contains", "key": "content.list", "value": True}, True),
    ({"kind": "event_property_contains", "key": "content.list", "value": None}, True),
    ({"kind": "event_property_contains", "key": "content.list", "value": False}, False),
    ({"kind": "event_property_contains", "key": "content.body", "value": "An"}, False),
    ({"kind": "room_member_count", "is": "5"}, True),
    ({"kind": "room_member_count", "is": "==5"}, True),
    ({"kind": "room_member_count", "is": "4"}, False),
    ({"kind": "room_member_count", "is": "<6"}, True),
    ({"kind": "room_member_count", "is": "<5"}, False),
    ({"kind": "room_member_count", "is": "<=5"}, True),
    ({"kind": "room_member_count", "is": ">4"}, True),
    ({"kind": "room_member_count", "is": ">5"}, False),
    ({"kind": "room_member_count", "is": ">=5"}, True),
    ({"kind": "room_member_count", "is": "=5"}, False),
    ({"kind": "room_member_count", "is": "five"}, False),
    ({"kind": "room_member_count", "is": 5}, False),
    ({"kind": "room_member_count"}, False),
    ({"kind": "sender_notification_permission", "key": "room"}, True),
    ({"kind": "sender_notification_permission", "key": "unknown"}, False),
    ({"kind": "sender_notification_permission"}, False),
    ({"kind": "contains_display_name"}, False),  # no display name in this context
    ({"kind": "org.example.unknown"}, False),
    ({}, False),
])
def test_conditions(condition: dict[str, Any], expected: bool) -> None:
    context = ctx(members=5, sender_power_level=50)
    assert condition_holds(condition, EVENT, context) is expected


@pytest.mark.parametrize(("display_name", "body", "expected"), [
    ("Alice", "hi alice!", True),
    ("Alice", "hi Alicea", False),
    ("Alice", "malice", False),
    ("A*", "hi Anna", False),  # display names match literally, not as globs
    ("A*", "hi a* there", True),
    ("", "hi", False),
    (None, "hi", False),
])
def test_contains_display_name(display_name: str | None, body: str, expected: bool) -> None:
    condition = {"kind": "contains_display_name"}
    assert condition_holds(condition, message(body), ctx(display_name=display_name)) is expected


def test_unknown_condition_disables_rule() -> None:
    rule = PushRule("override", "x", ("notify",),
                    conditions=({"kind": "event_match", "key": "type", "pattern": "*"},
                                {"kind": "com.example.future"}))
    assert evaluate([rule], message(), ctx()) is None
    assert evaluate([PushRule("override", "y", ("notify",))], message(), ctx()) == ["notify"]


@pytest.mark.parametrize(("path", "parts"), [
    ("content.body", ("content", "body")),
    ("content.m\\.relates_to", ("content", "m.relates_to")),
    ("content.m\\\\foo", ("content", "m\\foo")),
    ("content.m\\xfoo", ("content", "m\\xfoo")),
    ("a\\.b.c\\", ("a.b", "c\\")),
    ("type", ("type",)),
])
def test_property_paths(path: str, parts: tuple[str, ...]) -> None:
    assert split_property_path(path) == parts


def test_property_at_does_not_descend_into_arrays() -> None:
    assert property_at({"a": {"0": {"b": 1}}}, "a.0.b") == 1
    assert not condition_holds({"kind": "event_property_is", "key": "a.0.b", "value": 1},
                               {"a": [{"b": 1}]}, ctx())


def test_notification_levels_and_tweaks() -> None:
    assert notification_levels(None) == {"room": 50}
    assert notification_levels({"notifications": {"room": 20, "x": "30", "y": "z",
                                                  "b": True}}) == {"room": 20, "x": 30}
    actions = ["notify", SOUND, HIGHLIGHT, {"set_tweak": "custom", "value": 3}]
    assert tweaks(actions) == {"sound": "default", "highlight": True, "custom": 3}
    assert tweaks(["notify", {"set_tweak": "highlight", "value": False}]) == {"highlight": False}
    assert notifies(actions) and not notifies([]) and not notifies([HIGHLIGHT])
