"""Planner statistics for a PostgreSQL server whose autovacuum is off.

PostgreSQL chooses query plans from table statistics that ANALYZE gathers; autovacuum runs it
once enough of a table has changed. With autovacuum off, nothing does: a table that was never
analyzed is planned as if nearly empty, and a timeline page (``ORDER BY depth DESC ... LIMIT``)
becomes a scan and sort of the whole room instead of a walk down the index, ~10x slower on a
room of 5,000 events. Myelin warns once and then does for its own tables what autovacuum's
analyze would: every ``interval`` seconds, ANALYZE each table changed by more than
``50 + 10%`` of its rows since it was last analyzed (autovacuum's default
``autovacuum_analyze_threshold`` and ``autovacuum_analyze_scale_factor``). Dead rows are
still left for the administrator's VACUUM. With autovacuum on this does nothing at all.
"""

from __future__ import annotations

import asyncio
import logging

from myelin.storage.database import Database

log = logging.getLogger(__name__)

INTERVAL_S = 30.0
_THRESHOLD = 50  # autovacuum_analyze_threshold's default
_SCALE_FACTOR = 0.1  # autovacuum_analyze_scale_factor's default

_STALE_TABLES = (
    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema()"
    f" AND n_mod_since_analyze > {_THRESHOLD} + {_SCALE_FACTOR} * n_live_tup ORDER BY relname")


class PlannerStatistics:
    """Keeps this database's tables analyzed when the server's autovacuum does not."""

    def __init__(self, db: Database, interval: float = INTERVAL_S) -> None:
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the loop if this is PostgreSQL with autovacuum off (SQLite plans from its
        indexes without statistics)."""
        if self._db.engine != "postgresql" or await self._db.fetchval(
                "SELECT current_setting('autovacuum') = 'on'"):
            return
        log.warning("PostgreSQL's autovacuum is off: Myelin will ANALYZE its own tables "
                    "when they change, but dead rows pile up until you VACUUM; turn "
                    "autovacuum on for production")
        # The first round runs at once, in the task: a large database's ANALYZE must not
        # hold up the server's start, nor a failing one abort it.
        self._task = asyncio.create_task(self._loop(), name="planner-statistics")

    async def analyze_stale(self) -> list[str]:
        """ANALYZE the tables changed enough since their last analysis; their names."""
        rows = await self._db.fetch(_STALE_TABLES)
        tables = [r["relname"] for r in rows]
        for table in tables:
            # Names come from the catalogue, quoted as identifiers all the same.
            await self._db.execute('ANALYZE "{}"'.format(table.replace('"', '""')))
        if tables:
            log.debug("analyzed %s", ", ".join(tables))
        return tables

    async def _loop(self) -> None:
        while True:
            try:
                await self.analyze_stale()
            except Exception:  # a failed round is retried at the next one
                log.exception("updating planner statistics failed")
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
