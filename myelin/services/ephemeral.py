"""The in-memory stream of things that are never stored (typing, presence).

Its position is the second part of a /sync token. It restarts from zero with the process; a
token from before a restart is then ahead of it, and /sync answers such a token with the
current ephemeral state instead of changes, which is harmless for state this short-lived.
"""

from __future__ import annotations


class EphemeralStream:
    def __init__(self) -> None:
        self.position = 0

    def advance(self) -> int:
        self.position += 1
        return self.position
