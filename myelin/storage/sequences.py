"""Position allocators for streams (event stream orderings, state group IDs).

Positions are handed out in process, from the largest one stored at start-up: one process
writes, so no database round trip per event is needed. A stream's readable position is the
highest one below which every allocated position has finished (committed or given up), so a
reader never skips an event whose transaction commits late.
"""

from __future__ import annotations

from myelin.storage.database import Database


class StreamPositions:
    def __init__(self, start: int) -> None:
        self._last_allocated = start
        self._in_flight: set[int] = set()
        self._finished_upto = start

    @classmethod
    async def load(cls, db: Database, table: str, column: str,
                   *more: tuple[str, str]) -> StreamPositions:
        """Start after the largest position stored in ``table.column`` (and in ``more`` such
        pairs, for a stream shared by several tables)."""
        start = 0
        for name, col in ((table, column), *more):
            # Table and column names come from code, never from input.
            current = await db.fetchval(f"SELECT MAX({col}) FROM {name}")
            start = max(start, int(current) if current is not None else 0)
        return cls(start)

    def allocate(self) -> int:
        self._last_allocated += 1
        self._in_flight.add(self._last_allocated)
        return self._last_allocated

    def finish(self, position: int) -> None:
        """The write holding ``position`` committed or failed; either way it is no longer open."""
        self._in_flight.discard(position)
        self._finished_upto = (min(self._in_flight) - 1) if self._in_flight \
            else self._last_allocated

    @property
    def current(self) -> int:
        """Every position up to this one is final."""
        return self._finished_upto
