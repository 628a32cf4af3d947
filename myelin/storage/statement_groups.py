"""Fewer round trips for a write batch: statements with the same SQL run as one ``executemany``.

A room writer's batch is N events' writes one after another, each the same handful of SQL
texts (the event row, its edges, auth events, extremities, the client transaction, the
search row). Run as given that is ~8 statements per event, and on PostgreSQL each statement
is a round trip to the server; grouped, the batch costs a round trip per distinct SQL text
and asyncpg pipelines the rows of each ``executemany``.

Grouping moves a statement earlier, past the statements between it and the earlier one with
the same SQL. That is only done when it cannot change the outcome: the statement and every
statement it moves past mention no common table (a table written by one and read or written
by the other is the only way two statements can see each other's effect; the schema has no
triggers). Statements with the same SQL keep their relative order, so a later upsert of the
same key still wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from myelin.storage.database import Statement

__all__ = ["group_statements"]

# Every name after FROM / INTO / UPDATE / JOIN: the tables a statement reads or writes. A CTE
# name or a column after EXTRACT(... FROM ...) is taken for a table too, which only makes
# grouping more careful.
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+([A-Za-z_][A-Za-z0-9_.]*)", re.IGNORECASE)


@lru_cache(maxsize=1024)
def tables_of(sql: str) -> frozenset[str]:
    """The tables ``sql`` mentions, lower-cased (statements are few distinct texts: cached)."""
    return frozenset(name.lower() for name in _TABLE.findall(sql))


class _Group:
    __slots__ = ("many", "rows", "sql", "tables")

    def __init__(self, statement: Statement) -> None:
        self.sql = statement.sql
        self.tables = tables_of(statement.sql)
        self.many = statement.many
        self.rows: list[Sequence[Any]] = (list(statement.args) if statement.many
                                          else [statement.args])

    def add(self, statement: Statement) -> None:
        self.many = True
        if statement.many:
            self.rows.extend(statement.args)
        else:
            self.rows.append(statement.args)

    def statement(self) -> Statement:
        if self.many:
            return Statement(self.sql, self.rows, many=True)
        return Statement(self.sql, self.rows[0])


def group_statements(statements: Sequence[Statement]) -> list[Statement]:
    """``statements`` with each one merged into the latest earlier statement of the same SQL
    that it may move up to (see the module docstring); the result has the same effect."""
    if len(statements) < 2:
        return list(statements)
    groups: list[_Group] = []
    for statement in statements:
        tables = tables_of(statement.sql)
        for group in reversed(groups):
            if group.sql == statement.sql:
                group.add(statement)
                break
            if group.tables & tables:
                groups.append(_Group(statement))
                break
        else:
            groups.append(_Group(statement))
    return [group.statement() for group in groups]
