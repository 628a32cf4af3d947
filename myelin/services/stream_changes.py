"""Where in the shared durable stream something last changed, so readers can skip a query
whose window holds no change (the idea of Synapse's StreamChangeCache).

Writers ``mark`` a key with the position they were just allocated, *before* their write: a
reader that sees that position as current has therefore seen the mark too. Start-up counts as
a change of every key (the process knows nothing older), so a token from before a restart
always asks the database.
"""

from __future__ import annotations

from collections.abc import Hashable

EVERYTHING = "*"  # the key of a tracker that follows one thing only


class StreamChanges:
    def __init__(self, started_at: int) -> None:
        self._started_at = started_at
        self._at: dict[Hashable, int] = {}

    def mark(self, position: int, key: Hashable = EVERYTHING) -> None:
        self._at[key] = max(position, self._at.get(key, position))

    def changed_after(self, position: int, key: Hashable = EVERYTHING) -> bool:
        """Whether ``key`` may have changed at a position after ``position``."""
        return self._at.get(key, self._started_at) > position
