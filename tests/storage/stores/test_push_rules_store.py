"""Users' push rules and their changes to the defaults, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from myelin.core.push_rules import PushRule, RuleSetting
from myelin.storage.database import Database
from myelin.storage.stores.push_rules import AnchorNotFoundError, PushRuleStore

U = "@a:x"


def rule(rule_id: str, kind: str = "override") -> PushRule:
    return PushRule(kind, rule_id, ("notify",))


async def ids(store: PushRuleStore, kind: str = "override") -> list[str]:
    return [r.rule_id for r in await store.list_rules(U) if r.kind == kind]


async def test_ordering_with_before_and_after(db: Database) -> None:
    store = PushRuleStore(db)
    await store.put_rule(U, rule("a"))
    await store.put_rule(U, rule("b"))  # new rules go first
    assert await ids(store) == ["b", "a"]
    await store.put_rule(U, rule("c"), after="b")
    assert await ids(store) == ["b", "c", "a"]
    await store.put_rule(U, rule("d"), before="a")
    assert await ids(store) == ["b", "c", "d", "a"]
    await store.put_rule(U, rule("e"), before="b", after="a")  # before wins
    assert await ids(store) == ["e", "b", "c", "d", "a"]
    await store.put_rule(U, rule("a"), after="e")  # moving an existing rule
    assert await ids(store) == ["e", "a", "b", "c", "d"]
    await store.put_rule(U, rule("c"))  # updating without an anchor keeps its place
    assert await ids(store) == ["e", "a", "b", "c", "d"]
    with pytest.raises(AnchorNotFoundError) as caught:
        await store.put_rule(U, rule("f"), before="nope")
    assert caught.value.rule_id == "nope"
    with pytest.raises(AnchorNotFoundError):
        await store.put_rule(U, rule("c"), after="c")  # not relative to itself
    with pytest.raises(AnchorNotFoundError):
        await store.put_rule(U, rule("g", "underride"), after="a")  # other kind
    assert await ids(store) == ["e", "a", "b", "c", "d"]
    assert await ids(store, "underride") == []


async def test_rule_fields_round_trip(db: Database) -> None:
    store = PushRuleStore(db)
    conditions = ({"kind": "event_match", "key": "content.body", "pattern": "beer"},
                  {"kind": "room_member_count", "is": "<=10"})
    actions = ("notify", {"set_tweak": "sound", "value": "beeroclock.wav"})
    await store.put_rule(U, PushRule("override", "beer", actions, conditions=conditions))
    await store.put_rule(U, PushRule("content", "cake", ("notify",), pattern="cake*lie"))
    await store.put_rule(U, PushRule("room", "!r:x", ()))
    await store.put_rule("@other:x", PushRule("sender", "@s:x", ()))
    rules = {r.rule_id: r for r in await store.list_rules(U)}
    assert rules["beer"] == PushRule("override", "beer", actions, conditions=conditions)
    assert rules["cake"] == PushRule("content", "cake", ("notify",), pattern="cake*lie")
    assert rules["!r:x"] == PushRule("room", "!r:x", ())
    assert set(rules) == {"beer", "cake", "!r:x"}


async def test_enabled_actions_and_delete(db: Database) -> None:
    store = PushRuleStore(db)
    await store.put_rule(U, rule("a"))
    assert await store.set_enabled(U, "override", "a", False)
    assert not await store.set_enabled(U, "underride", "a", False)
    assert await store.set_actions(U, "override", "a", [])
    await store.put_rule(U, PushRule("override", "a", ("notify",)))  # update keeps disabled
    (stored,) = await store.list_rules(U)
    assert stored.enabled is False and stored.actions == ("notify",)
    assert not await store.set_actions(U, "override", "nope", [])
    assert await store.delete_rule(U, "override", "a")
    assert not await store.delete_rule(U, "override", "a")
    assert await store.list_rules(U) == []


async def test_default_settings(db: Database) -> None:
    store = PushRuleStore(db)
    assert await store.list_default_settings(U) == {}
    await store.set_default_enabled(U, "override", ".m.rule.master", True)
    await store.set_default_actions(U, "underride", ".m.rule.message", ["notify", "x"])
    await store.set_default_actions(U, "override", ".m.rule.master", ["notify"])
    await store.set_default_enabled(U, "underride", ".m.rule.message", False)
    await store.set_default_enabled(U, "underride", ".m.rule.message", True)
    assert await store.list_default_settings(U) == {
        ("override", ".m.rule.master"): RuleSetting(True, ("notify",)),
        ("underride", ".m.rule.message"): RuleSetting(True, ("notify", "x")),
    }
    assert await store.list_default_settings("@other:x") == {}
