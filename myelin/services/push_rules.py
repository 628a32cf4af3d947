"""Per-user push rules (client-server API, "Push Rules: API"): the server-default rules,
merged with the user's own rules and their changes to the defaults.

Rule evaluation itself is pure and lives in :mod:`myelin.core.push_rules`; the notification
code gets a user's merged ruleset from :meth:`PushRuleService.ruleset` and passes it to
``evaluate_for_user``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from myelin.core.push_rules import KINDS, PushRule, Ruleset, build_ruleset, default_rules
from myelin.errors import MatrixError, bad_json, invalid_param, missing_param, not_found
from myelin.ids import UserID
from myelin.storage.stores.push_rules import AnchorNotFoundError, PushRuleStore

OnChange = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Called with ``(user_id, m.push_rules content)`` after every change to a user's rules."""

_CACHE_SIZE = 10_000


def _no_such_rule() -> MatrixError:
    return not_found("The push rule was not found.")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise invalid_param(f"Unknown push rule kind {kind!r}")


# Defaults depend on the user only through condition values, never through their IDs.
_DEFAULT_IDS = frozenset((kind, r.rule_id) for kind, rules in default_rules("@_:_").items()
                         for r in rules)


def _is_default(kind: str, rule_id: str) -> bool:
    return (kind, rule_id) in _DEFAULT_IDS


def _check_actions(actions: Sequence[Any]) -> None:
    for action in actions:
        if isinstance(action, Mapping) and not isinstance(action.get("set_tweak"), str):
            raise bad_json("An object action needs a string 'set_tweak'")


def _check_new_rule_id(kind: str, rule_id: str) -> None:
    if rule_id == "":
        raise invalid_param("The push rule ID must not be empty")
    if rule_id.startswith("."):
        raise invalid_param("Push rule IDs starting with '.' are reserved for server-default rules")
    if "/" in rule_id or "\\" in rule_id:
        raise invalid_param("Push rule IDs must not contain '/' or '\\'")
    if kind == "room" and not rule_id.startswith("!"):
        raise invalid_param("The rule ID of a room rule must be a room ID")
    if kind == "sender":
        UserID.parse(rule_id)  # M_INVALID_PARAM if not a user ID


class PushRuleService:
    def __init__(self, store: PushRuleStore, on_change: OnChange | None = None) -> None:
        self._store = store
        self.on_change = on_change
        self._cache: dict[str, Ruleset] = {}
        self._generation = 0  # bumped by every change, so a read racing one is not cached

    async def ruleset(self, user_id: str) -> Ruleset:
        """The user's merged ruleset, in evaluation order (cached until the user changes it)."""
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        generation = self._generation
        ruleset = build_ruleset(user_id, await self._store.list_rules(user_id),
                                await self._store.list_default_settings(user_id))
        if generation == self._generation:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[user_id] = ruleset
        return ruleset

    async def rulesets_json(self, user_id: str) -> dict[str, Any]:
        """``GET /pushrules/``, and the content of the user's ``m.push_rules`` account data."""
        return {"global": (await self.ruleset(user_id)).to_json()}

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> PushRule:
        _check_kind(kind)
        rule = (await self.ruleset(user_id)).get(kind, rule_id)
        if rule is None:
            raise _no_such_rule()
        return rule

    async def put_rule(self, user_id: str, kind: str, rule_id: str, *,
                       actions: Sequence[Any], conditions: Sequence[Mapping[str, Any]] | None,
                       pattern: str | None, before: str | None, after: str | None) -> None:
        """Create or update one of the user's rules (never a server-default one)."""
        _check_kind(kind)
        _check_new_rule_id(kind, rule_id)
        _check_actions(actions)
        if kind == "content" and pattern is None:
            raise missing_param("Content rules need a 'pattern'")
        if kind in ("override", "underride"):
            for condition in conditions or ():
                if not isinstance(condition.get("kind"), str):
                    raise bad_json("Every push condition needs a string 'kind'")
        rule = PushRule(kind, rule_id, tuple(actions),
                        conditions=tuple(conditions or ()) if kind in ("override",
                                                                       "underride") else (),
                        pattern=pattern if kind == "content" else None)
        try:
            await self._store.put_rule(user_id, rule, before=before, after=after)
        except AnchorNotFoundError as e:
            # The spec's own example for this case: 400 M_UNKNOWN.
            raise MatrixError(400, "M_UNKNOWN",
                              f"before/after rule not found: {e.rule_id}") from None
        await self._changed(user_id)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        _check_kind(kind)
        if _is_default(kind, rule_id):
            raise invalid_param("Server-default push rules cannot be deleted")
        if not await self._store.delete_rule(user_id, kind, rule_id):
            raise _no_such_rule()
        await self._changed(user_id)

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        _check_kind(kind)
        if _is_default(kind, rule_id):
            await self._store.set_default_enabled(user_id, kind, rule_id, enabled)
        elif not await self._store.set_enabled(user_id, kind, rule_id, enabled):
            raise _no_such_rule()
        await self._changed(user_id)

    async def set_actions(self, user_id: str, kind: str, rule_id: str,
                          actions: Sequence[Any]) -> None:
        _check_kind(kind)
        _check_actions(actions)
        if _is_default(kind, rule_id):
            await self._store.set_default_actions(user_id, kind, rule_id, actions)
        elif not await self._store.set_actions(user_id, kind, rule_id, actions):
            raise _no_such_rule()
        await self._changed(user_id)

    async def _changed(self, user_id: str) -> None:
        self._generation += 1
        self._cache.pop(user_id, None)
        if self.on_change is not None:
            await self.on_change(user_id, await self.rulesets_json(user_id))
