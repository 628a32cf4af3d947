"""Planner statistics kept by Myelin when PostgreSQL's autovacuum is off."""

from __future__ import annotations

import asyncio
import time

import pytest

from myelin.storage.database import Database
from myelin.storage.planner_statistics import PlannerStatistics


async def _fill(db: Database, rows: int) -> None:
    await db.execute("CREATE TABLE planner_probe (id INTEGER PRIMARY KEY, v TEXT)")
    await db.executemany("INSERT INTO planner_probe (id, v) VALUES ($1, $2)",
                         [(i, f"v{i}") for i in range(rows)])


async def _stale(statistics: PlannerStatistics, table: str) -> list[str]:
    """analyze_stale() once the server's activity counters show ``table``'s writes (a
    backend reports them shortly after its transaction ends, not at once)."""
    deadline = time.monotonic() + 5
    while True:
        analyzed = await statistics.analyze_stale()
        if table in analyzed or time.monotonic() > deadline:
            return analyzed
        await asyncio.sleep(0.1)


async def test_nothing_happens_on_sqlite_or_with_autovacuum_on(db: Database) -> None:
    statistics = PlannerStatistics(db, interval=0.05)
    await statistics.start()
    autovacuum_off = db.engine == "postgresql" and not await db.fetchval(
        "SELECT current_setting('autovacuum') = 'on'")
    assert (statistics._task is not None) == autovacuum_off
    await statistics.stop()
    assert statistics._task is None


async def test_changed_tables_are_analyzed_once(db: Database) -> None:
    if db.engine != "postgresql":
        return  # SQLite plans without statistics; there is nothing to keep
    statistics = PlannerStatistics(db)
    await _fill(db, 500)
    assert "planner_probe" in await _stale(statistics, "planner_probe")
    assert await db.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'planner_probe'"
                             ) == 500
    # Analyzed: unchanged since, so not again; a few more rows stay under the threshold.
    await db.executemany("INSERT INTO planner_probe (id, v) VALUES ($1, $2)",
                         [(i, "more") for i in range(500, 520)])
    await asyncio.sleep(1.2)
    assert "planner_probe" not in await statistics.analyze_stale()


async def test_the_loop_analyzes_what_changes_while_it_runs(db: Database) -> None:
    if db.engine != "postgresql" or await db.fetchval(
            "SELECT current_setting('autovacuum') = 'on'"):
        return  # the loop only runs where autovacuum does not
    statistics = PlannerStatistics(db, interval=0.1)
    await statistics.start()
    try:
        await _fill(db, 300)
        deadline = time.monotonic() + 5
        while await db.fetchval(
                "SELECT reltuples FROM pg_class WHERE relname = 'planner_probe'") != 300:
            assert time.monotonic() < deadline, "the table was never analyzed"
            await asyncio.sleep(0.1)
    finally:
        await statistics.stop()


async def test_a_failed_round_is_logged_and_the_next_one_runs(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    if db.engine != "postgresql" or await db.fetchval(
            "SELECT current_setting('autovacuum') = 'on'"):
        return  # the loop only runs where autovacuum does not
    statistics = PlannerStatistics(db, interval=0.05)
    rounds: list[str] = []
    real_round = statistics.analyze_stale

    async def flaky_round() -> list[str]:
        rounds.append("round")
        if len(rounds) == 1:
            raise RuntimeError("the database went away for a moment")
        return await real_round()

    statistics.analyze_stale = flaky_round  # type: ignore[method-assign]
    await statistics.start()  # the failing first round must not fail the start
    try:
        deadline = time.monotonic() + 5
        while len(rounds) < 3:
            assert time.monotonic() < deadline, "the loop stopped after a failed round"
            await asyncio.sleep(0.05)
    finally:
        await statistics.stop()
    assert "updating planner statistics failed" in caplog.text
