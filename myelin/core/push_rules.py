"""Push rules (client-server API, "Push Notifications"): the rule model, the server-default
rules, and evaluation of a user's ruleset against an event. Pure: no I/O.

The notification code calls :func:`evaluate_for_user` once per local recipient of an event;
an empty result means "do not notify". :func:`notifies` and :func:`tweaks` read the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from myelin.core.push_conditions import (
    PushContext,
    condition_holds,
    glob_matches,
    notification_levels,
    property_at,
    split_property_path,
)

__all__ = [
    "HISTORICAL_ACTIONS",
    "KINDS",
    "MASTER_RULE_ID",
    "ConditionMemo",
    "EventEvaluation",
    "Outcome",
    "PushContext",
    "PushRule",
    "RuleSetting",
    "Ruleset",
    "build_ruleset",
    "condition_holds",
    "condition_key",
    "default_rules",
    "evaluate",
    "evaluate_for_user",
    "glob_matches",
    "notification_levels",
    "notifies",
    "property_at",
    "split_property_path",
    "tweaks",
]

KINDS = ("override", "content", "room", "sender", "underride")
"""Rule kinds, in the order they are checked."""

HISTORICAL_ACTIONS = frozenset({"dont_notify", "coalesce"})
"""Actions that "MUST" be ignored ("Historical Actions"): stripped from evaluation results."""

MASTER_RULE_ID = ".m.rule.master"


@dataclass(frozen=True, slots=True)
class PushRule:
    """One rule. ``conditions`` apply to override/underride rules, ``pattern`` to content
    rules; room and sender rules match on their ``rule_id``."""

    kind: str
    rule_id: str
    actions: tuple[Any, ...]
    enabled: bool = True
    default: bool = False
    conditions: tuple[Mapping[str, Any], ...] = ()
    pattern: str | None = None
    # Per condition, what its outcome depends on besides the event (see ``condition_key``);
    # derived from ``conditions``, so not compared.
    condition_keys: tuple[str | None, ...] = field(default=(), init=False, compare=False,
                                                        repr=False)

    # All the conditions' keys in one, when none depends on the recipient: then the whole
    # rule's outcome is shared through the memo.
    match_key: str | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        keys = tuple(condition_key(c) for c in self.conditions)
        object.__setattr__(self, "condition_keys", keys)
        if self.kind in ("override", "underride") and None not in keys:
            object.__setattr__(self, "match_key", "rule" + repr(keys))

    def to_json(self) -> dict[str, Any]:
        """The rule as the API and the ``m.push_rules`` event show it (``PushRule``)."""
        out: dict[str, Any] = {"rule_id": self.rule_id, "default": self.default,
                               "enabled": self.enabled, "actions": list(self.actions)}
        if self.kind in ("override", "underride"):
            out["conditions"] = [dict(c) for c in self.conditions]
        elif self.kind == "content" and self.pattern is not None:
            out["pattern"] = self.pattern
        return out


@dataclass(frozen=True, slots=True)
class RuleSetting:
    """A user's change to a server-default rule; ``None`` keeps the server's value."""

    enabled: bool | None = None
    actions: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class Ruleset:
    """A user's ``global`` ruleset: per kind, the rules most important first."""

    by_kind: Mapping[str, tuple[PushRule, ...]]
    # The user whose ruleset this is, when known: it makes ``template`` possible.
    owner: str | None = field(default=None, compare=False)
    # Whether an enabled rule reads the recipient's display name: if none does, evaluation
    # need not look up the recipient's membership event.
    uses_display_name: bool = field(default=False, init=False, compare=False, repr=False)
    # The rules with the owner's user ID abstracted (see ``_template``): recipients whose
    # rulesets share a template get the same actions on an event that names none of them.
    template: str | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uses_display_name", any(
            rule.enabled and c.get("kind") == "contains_display_name"
            for rule in self for c in rule.conditions))
        object.__setattr__(self, "template", _template(self))

    def __iter__(self) -> Iterator[PushRule]:
        """Every rule in evaluation order."""
        for kind in KINDS:
            yield from self.by_kind.get(kind, ())

    def get(self, kind: str, rule_id: str) -> PushRule | None:
        for rule in self.by_kind.get(kind, ()):
            if rule.rule_id == rule_id:
                return rule
        return None

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """The ``PushRuleset`` object (``{"override": [...], "content": [...], ...}``)."""
        return {kind: [r.to_json() for r in self.by_kind.get(kind, ())] for kind in KINDS}


# --- The server-default rules ("Predefined Rules"), in the spec's order. ---

def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


_SOUND_DEFAULT = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def default_rules(user_id: str) -> dict[str, tuple[PushRule, ...]]:
    """The server-default rules for ``user_id``, per kind, most important first.

    Matrix v1.17 removed the legacy body-mention rules (``.m.rule.contains_display_name``,
    ``.m.rule.contains_user_name``, ``.m.rule.roomnotif``), so there are no default content
    rules.
    """
    def rule(kind: str, rule_id: str, conditions: Sequence[Mapping[str, Any]],
             actions: Sequence[Any], enabled: bool = True) -> PushRule:
        return PushRule(kind, rule_id, tuple(dict(a) if isinstance(a, dict) else a
                                             for a in actions),
                        enabled=enabled, default=True, conditions=tuple(conditions))

    override = (
        rule("override", ".m.rule.master", [], [], enabled=False),
        rule("override", ".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        rule("override", ".m.rule.invite_for_me",
             [_match("type", "m.room.member"), _match("content.membership", "invite"),
              _match("state_key", user_id)],
             ["notify", _SOUND_DEFAULT]),
        rule("override", ".m.rule.member_event", [_match("type", "m.room.member")], []),
        rule("override", ".m.rule.is_user_mention",
             [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids",
               "value": user_id}],
             ["notify", _SOUND_DEFAULT, _HIGHLIGHT]),
        rule("override", ".m.rule.is_room_mention",
             [{"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
              {"kind": "sender_notification_permission", "key": "room"}],
             ["notify", _HIGHLIGHT]),
        rule("override", ".m.rule.tombstone",
             [_match("type", "m.room.tombstone"), _match("state_key", "")],
             ["notify", _HIGHLIGHT]),
        rule("override", ".m.rule.reaction", [_match("type", "m.reaction")], []),
        rule("override", ".m.rule.room.server_acl",
             [_match("type", "m.room.server_acl"), _match("state_key", "")], []),
        rule("override", ".m.rule.suppress_edits",
             [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
               "value": "m.replace"}], []),
    )
    underride = (
        rule("underride", ".m.rule.call", [_match("type", "m.call.invite")],
             ["notify", {"set_tweak": "sound", "value": "ring"}]),
        rule("underride", ".m.rule.encrypted_room_one_to_one",
             [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
             ["notify", _SOUND_DEFAULT]),
        rule("underride", ".m.rule.room_one_to_one",
             [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
             ["notify", _SOUND_DEFAULT]),
        rule("underride", ".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        rule("underride", ".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    )
    return {"override": override, "content": (), "room": (), "sender": (),
            "underride": underride}


def build_ruleset(user_id: str, user_rules: Iterable[PushRule],
                  settings: Mapping[tuple[str, str], RuleSetting]) -> Ruleset:
    """Merge the defaults (with the user's ``settings`` keyed by ``(kind, rule_id)``) with the
    user's own rules, given most important first within each kind.

    Server-default rules rank below the user's rules of the same kind, except
    ``.m.rule.master``, which ranks above everything.
    """
    own: dict[str, list[PushRule]] = {kind: [] for kind in KINDS}
    for r in user_rules:
        own[r.kind].append(r)
    by_kind: dict[str, tuple[PushRule, ...]] = {}
    for kind, defaults in default_rules(user_id).items():
        adjusted = []
        for r in defaults:
            s = settings.get((kind, r.rule_id))
            if s is not None:
                r = replace(r, enabled=r.enabled if s.enabled is None else s.enabled,
                            actions=r.actions if s.actions is None else s.actions)
            adjusted.append(r)
        first = [r for r in adjusted if r.rule_id == MASTER_RULE_ID]
        rest = [r for r in adjusted if r.rule_id != MASTER_RULE_ID]
        by_kind[kind] = (*first, *own[kind], *rest)
    return Ruleset(by_kind, owner=user_id)


# --- Evaluation ---

_SAME_FOR_EVERY_RECIPIENT = frozenset({
    "event_match", "event_property_is", "event_property_contains",
    # These read the context, but only what is the same for every recipient of one event:
    # the room's member count, the sender's power level and the room's notification levels.
    "room_member_count", "sender_notification_permission",
})


_ABSENT = "<absent>"  # repr-distinct from any string value: repr quotes strings


def condition_key(cond: Mapping[str, Any]) -> str | None:
    """A hashable name for what decides ``cond``'s outcome on one event, the same for every
    recipient, so one event's evaluation for many users tests each distinct condition once.
    ``None`` for a condition that depends on the recipient (``contains_display_name``): it is
    always tested."""
    kind = cond.get("kind")
    if kind not in _SAME_FOR_EVERY_RECIPIENT:
        return None
    # A string, not a tuple: a string keeps its hash, so the lookups cost no hashing. repr
    # tells JSON values apart (``True`` from ``'True'``, ``1`` from ``'1'``).
    return repr((kind, cond.get("key"), cond.get("pattern"), cond.get("is"),
                 cond.get("value", _ABSENT)))


ConditionMemo = dict[str, bool]
"""Outcomes of conditions on one event, by ``condition_key``: share one across the
recipients of that event, never across events."""


def evaluate(rules: Iterable[PushRule], event: Mapping[str, Any],
             context: PushContext, memo: ConditionMemo | None = None) -> list[Any] | None:
    """The actions of the first enabled rule matching ``event`` (historical actions
    stripped), or ``None`` if no rule matches. ``rules`` must be in evaluation order."""
    for rule in rules:
        if rule.enabled and _rule_matches(rule, event, context, memo):
            return [a for a in rule.actions
                    if not (isinstance(a, str) and a in HISTORICAL_ACTIONS)]
    return None


def evaluate_for_user(ruleset: Ruleset, event: Mapping[str, Any],
                      context: PushContext, memo: ConditionMemo | None = None) -> list[Any]:
    """The actions for ``context.user_id`` on ``event`` (a client- or federation-format
    event dict): ``[]`` when nothing matches or when the user sent the event themselves
    (homeservers "MUST NOT notify ... for events that the user has sent themselves").

    Use :func:`notifies` to decide whether to count/push it and :func:`tweaks` for its
    ``highlight``/``sound``. Pass one ``memo`` for all the recipients of one event.
    """
    if event.get("sender") == context.user_id:
        return []
    return evaluate(ruleset, event, context, memo) or []


class _Owner:
    """Stands for the ruleset's owner in a template; its repr is no JSON value's repr."""

    def __repr__(self) -> str:
        return "<owner>"


_OWNER = _Owner()


def _template(ruleset: Ruleset) -> str | None:
    """The ruleset as a function of its owner: every condition value equal to the owner's
    user ID (the default rules' ``invite_for_me`` and ``is_user_mention``) becomes a
    placeholder. ``None`` when sharing would not be sound: no known owner, an owner ID with
    glob characters (its pattern could match other text), or a rule reading the display
    name (which differs per recipient)."""
    owner = ruleset.owner
    if owner is None or ruleset.uses_display_name or "*" in owner or "?" in owner:
        return None
    return repr(tuple(
        (rule.kind, rule.rule_id, rule.enabled, rule.actions, rule.pattern,
         tuple(tuple((k, _OWNER if v == owner else v) for k, v in c.items())
               for c in rule.conditions))
        for rule in ruleset))


def _event_text(event: Mapping[str, Any]) -> str:
    """Every string value of the event, case-folded, NUL-separated: a user ID that is not a
    substring of it cannot satisfy a condition naming that user (event_match compares
    case-folded text, event_property_is/contains compare exactly)."""
    parts: list[str] = []
    pending: list[Any] = [event]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, (list, tuple)):
            pending.extend(value)
    return "\0".join(parts).casefold()


class Outcome(NamedTuple):
    """One recipient's result for an event: the actions and what they mean."""

    actions: list[Any]
    notify: bool
    highlight: bool


class EventEvaluation:
    """One event evaluated for many recipients.

    Most recipients of a room message have the default rules, which differ only in the
    owner's user ID, and the event names none of them; their rules then give one outcome,
    computed once per distinct ``Ruleset.template`` instead of once per recipient. A
    recipient the event's text names (an invitee, a mention, a body containing the ID) is
    evaluated alone. Conditions shared by every recipient are memoized across all of them.
    """

    __slots__ = ("_event", "_memo", "_shared", "_text")

    def __init__(self, event: Mapping[str, Any]) -> None:
        self._event = event
        self._memo: ConditionMemo = {}
        self._text: str | None = None
        self._shared: dict[str, Outcome] = {}

    def outcome(self, ruleset: Ruleset, user_id: str,
                context: Callable[[], PushContext]) -> Outcome:
        """``user_id``'s outcome; ``context`` (the recipient's :class:`PushContext`) is only
        built when the rules have to be evaluated for this recipient."""
        template = ruleset.template
        if template is not None and user_id == ruleset.owner:
            if self._text is None:
                self._text = _event_text(self._event)
            if user_id.casefold() not in self._text:
                shared = self._shared.get(template)
                if shared is None:
                    shared = self._shared[template] = self._evaluate(ruleset, context())
                return shared
        return self._evaluate(ruleset, context())

    def _evaluate(self, ruleset: Ruleset, context: PushContext) -> Outcome:
        actions = evaluate_for_user(ruleset, self._event, context, self._memo)
        return Outcome(actions, notifies(actions), bool(tweaks(actions).get("highlight")))


def notifies(actions: Iterable[Any]) -> bool:
    return "notify" in actions


def tweaks(actions: Iterable[Any]) -> dict[str, Any]:
    """The tweaks the actions set; ``highlight`` without a value means ``True``."""
    out: dict[str, Any] = {}
    for action in actions:
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            name = action["set_tweak"]
            out[name] = action.get("value", True if name == "highlight" else None)
    return out


def _rule_matches(rule: PushRule, event: Mapping[str, Any], ctx: PushContext,
                  memo: ConditionMemo | None) -> bool:
    if rule.kind == "content":
        body = property_at(event, "content.body")
        return (rule.pattern is not None and isinstance(body, str)
                and glob_matches(rule.pattern, body, words=True))
    if rule.kind == "room":
        return event.get("room_id") == rule.rule_id
    if rule.kind == "sender":
        return event.get("sender") == rule.rule_id
    if memo is None:
        return all(condition_holds(c, event, ctx) for c in rule.conditions)
    if rule.match_key is not None:
        matched = memo.get(rule.match_key)
        if matched is None:
            matched = memo[rule.match_key] = _conditions_hold(rule, event, ctx, memo)
        return matched
    return _conditions_hold(rule, event, ctx, memo)


def _conditions_hold(rule: PushRule, event: Mapping[str, Any], ctx: PushContext,
                     memo: ConditionMemo) -> bool:
    for cond, key in zip(rule.conditions, rule.condition_keys, strict=True):
        known = memo.get(key) if key is not None else None
        if known is None:
            known = condition_holds(cond, event, ctx)
            if key is not None:
                memo[key] = known
        if not known:
            return False
    return True
