"""Users' push rules (tables ``push_rules`` and ``push_rule_defaults``).

``push_rules`` holds the rules a user created, ordered within a kind by ``priority`` (lower is
more important); ``push_rule_defaults`` holds the user's changes to server-default rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from myelin.core.push_rules import PushRule, RuleSetting
from myelin.storage.database import Database, Row, Transaction


class AnchorNotFoundError(LookupError):
    """The ``before``/``after`` rule of a PUT is not one of the user's rules of that kind."""

    def __init__(self, rule_id: str) -> None:
        super().__init__(rule_id)
        self.rule_id = rule_id


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _rule(row: Row) -> PushRule:
    conditions = row["conditions"]
    return PushRule(
        row["kind"], row["rule_id"], tuple(orjson.loads(row["actions"])),
        enabled=bool(row["enabled"]), default=False,
        conditions=() if conditions is None else tuple(orjson.loads(conditions)),
        pattern=row["pattern"],
    )


class PushRuleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_rules(self, user_id: str) -> list[PushRule]:
        """The user's own rules, most important first within each kind."""
        rows = await self._db.fetch(
            "SELECT kind, rule_id, conditions, pattern, actions, enabled FROM push_rules"
            " WHERE user_id = $1 ORDER BY kind, priority, rule_id",
            user_id,
        )
        return [_rule(r) for r in rows]

    async def list_default_settings(self, user_id: str) -> dict[tuple[str, str], RuleSetting]:
        rows = await self._db.fetch(
            "SELECT kind, rule_id, enabled, actions FROM push_rule_defaults WHERE user_id = $1",
            user_id,
        )
        return {
            (r["kind"], r["rule_id"]): RuleSetting(
                enabled=None if r["enabled"] is None else bool(r["enabled"]),
                actions=None if r["actions"] is None else tuple(orjson.loads(r["actions"])),
            )
            for r in rows
        }

    async def put_rule(self, user_id: str, rule: PushRule, *, before: str | None = None,
                       after: str | None = None) -> None:
        """Create or replace one of the user's rules.

        A new rule goes just above ``before``, else just below ``after``, else first of its
        kind; an existing one keeps its place (and its enabled state) unless ``before`` or
        ``after`` moves it. Raises :class:`AnchorNotFoundError` if the anchor is not another
        of the user's rules of the same kind.
        """
        conditions = None if rule.kind not in ("override", "underride") else _dumps(
            list(rule.conditions))
        async with self._db.transaction() as txn:
            rows = await txn.fetch(
                "SELECT rule_id, priority FROM push_rules WHERE user_id = $1 AND kind = $2"
                " ORDER BY priority, rule_id",
                user_id, rule.kind,
            )
            order = [r["rule_id"] for r in rows]
            existing = rule.rule_id in order
            position = order.index(rule.rule_id) if existing else 0
            if existing:
                order.remove(rule.rule_id)
            anchor = before if before is not None else after
            if anchor is not None:
                if anchor not in order:
                    raise AnchorNotFoundError(anchor)
                position = order.index(anchor) + (0 if before is not None else 1)
            order.insert(position, rule.rule_id)
            if existing:
                await txn.execute(
                    "UPDATE push_rules SET conditions = $4, pattern = $5, actions = $6"
                    " WHERE user_id = $1 AND kind = $2 AND rule_id = $3",
                    user_id, rule.kind, rule.rule_id, conditions, rule.pattern,
                    _dumps(list(rule.actions)),
                )
            else:
                await txn.execute(
                    "INSERT INTO push_rules (user_id, kind, rule_id, priority, conditions,"
                    " pattern, actions, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    user_id, rule.kind, rule.rule_id, -1, conditions, rule.pattern,
                    _dumps(list(rule.actions)), rule.enabled,
                )
            old = {r["rule_id"]: int(r["priority"]) for r in rows}
            await _renumber(txn, user_id, rule.kind, order, old)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> bool:
        return await self._db.execute(
            "DELETE FROM push_rules WHERE user_id = $1 AND kind = $2 AND rule_id = $3",
            user_id, kind, rule_id,
        ) == 1

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> bool:
        """Enable or disable one of the user's rules; False if there is no such rule."""
        return await self._db.execute(
            "UPDATE push_rules SET enabled = $4 WHERE user_id = $1 AND kind = $2"
            " AND rule_id = $3",
            user_id, kind, rule_id, enabled,
        ) == 1

    async def set_actions(self, user_id: str, kind: str, rule_id: str,
                          actions: Sequence[Any]) -> bool:
        """Replace the actions of one of the user's rules; False if there is no such rule."""
        return await self._db.execute(
            "UPDATE push_rules SET actions = $4 WHERE user_id = $1 AND kind = $2"
            " AND rule_id = $3",
            user_id, kind, rule_id, _dumps(list(actions)),
        ) == 1

    async def set_default_enabled(self, user_id: str, kind: str, rule_id: str,
                                  enabled: bool) -> None:
        await self._db.execute(
            "INSERT INTO push_rule_defaults (user_id, kind, rule_id, enabled)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, kind, rule_id)"
            " DO UPDATE SET enabled = excluded.enabled",
            user_id, kind, rule_id, enabled,
        )

    async def set_default_actions(self, user_id: str, kind: str, rule_id: str,
                                  actions: Sequence[Any]) -> None:
        await self._db.execute(
            "INSERT INTO push_rule_defaults (user_id, kind, rule_id, actions)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, kind, rule_id)"
            " DO UPDATE SET actions = excluded.actions",
            user_id, kind, rule_id, _dumps(list(actions)),
        )


async def _renumber(txn: Transaction, user_id: str, kind: str, order: list[str],
                    old: dict[str, int]) -> None:
    """Give the rules of ``kind`` the priorities 0, 1, ... in ``order``, touching only the
    rows whose priority changes."""
    changed = [(user_id, kind, rule_id, i) for i, rule_id in enumerate(order)
               if old.get(rule_id) != i]
    for args in changed:
        await txn.execute(
            "UPDATE push_rules SET priority = $4 WHERE user_id = $1 AND kind = $2"
            " AND rule_id = $3",
            *args,
        )
