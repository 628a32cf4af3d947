"""Grouping a write batch's statements by SQL text (myelin/storage/statement_groups.py)."""

from __future__ import annotations

from myelin.storage.database import Statement
from myelin.storage.statement_groups import group_statements, tables_of

EVENT = "INSERT INTO events (event_id) VALUES ($1)"
EDGES = "INSERT INTO event_edges (event_id, prev) VALUES ($1, $2)"
DROP_TIP = "DELETE FROM forward_extremities WHERE event_id = $1"
ADD_TIP = "INSERT INTO forward_extremities (event_id) VALUES ($1)"
THREAD = ("UPDATE threads SET n = (SELECT COUNT(*) FROM events e JOIN event_edges x"
          " ON x.event_id = e.event_id) WHERE id = $1")


def test_tables_of_reads_and_writes() -> None:
    assert tables_of(EVENT) == {"events"}
    assert tables_of(THREAD) == {"threads", "events", "event_edges"}
    assert tables_of("delete from Kv where k = $1") == {"kv"}


def test_independent_tables_group_into_one_statement_each() -> None:
    batch = [Statement(EVENT, ("$a",)), Statement(EDGES, [("$a", "$0")], many=True),
             Statement(EVENT, ("$b",)), Statement(EDGES, [("$b", "$a")], many=True)]
    assert group_statements(batch) == [
        Statement(EVENT, [("$a",), ("$b",)], many=True),
        Statement(EDGES, [("$a", "$0"), ("$b", "$a")], many=True)]


def test_a_statement_never_moves_past_one_on_the_same_table() -> None:
    batch = [Statement(DROP_TIP, ("$0",)), Statement(ADD_TIP, ("$a",)),
             Statement(DROP_TIP, ("$a",)), Statement(ADD_TIP, ("$b",))]
    assert group_statements(batch) == batch


def test_a_reader_stays_after_the_writes_it_reads() -> None:
    batch = [Statement(EVENT, ("$a",)), Statement(THREAD, ("t",)), Statement(EVENT, ("$b",)),
             Statement(THREAD, ("t",))]
    assert group_statements(batch) == batch


def test_rows_of_one_sql_keep_their_order() -> None:
    batch = [Statement(EVENT, ("$a",)), Statement(EDGES, ("$a", "$0")),
             Statement(EVENT, [("$b",), ("$c",)], many=True), Statement(EVENT, ("$d",))]
    assert group_statements(batch) == [
        Statement(EVENT, [("$a",), ("$b",), ("$c",), ("$d",)], many=True),
        Statement(EDGES, ("$a", "$0"))]


def test_small_batches_are_untouched() -> None:
    assert group_statements([]) == []
    one = [Statement(EVENT, ("$a",))]
    assert group_statements(one) == one
