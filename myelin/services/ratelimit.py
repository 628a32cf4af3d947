"""Token-bucket rate limiting per (bucket, client) (client-server API, "Rate limiting").

In memory and per process: a limit exists to shed a burst cheaply, and a restart forgetting it
is harmless. Buckets are the fields of ``config.RateLimitsConfig``.
"""

from __future__ import annotations

import time

from myelin.config import RateLimit, RateLimitsConfig
from myelin.errors import limit_exceeded

_PRUNE_EVERY = 10_000  # checks between sweeps of buckets that have refilled completely


class RateLimiter:
    def __init__(self, config: RateLimitsConfig) -> None:
        self.enabled = config.enabled
        self._limits: dict[str, RateLimit] = {
            name: value for name, value in vars(config).items() if isinstance(value, RateLimit)
        }
        # (bucket, key) -> (tokens left, time of last update)
        self._state: dict[tuple[str, str], tuple[float, float]] = {}
        self._checks = 0

    def has_bucket(self, name: str) -> bool:
        return name in self._limits

    def check(self, bucket: str, key: str, now: float | None = None) -> None:
        """Take one token, or raise 429 M_LIMIT_EXCEEDED saying when one will be free."""
        if not self.enabled:
            return
        limit = self._limits[bucket]
        now = time.monotonic() if now is None else now
        tokens, last = self._state.get((bucket, key), (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.per_second)
        if tokens < 1.0:
            self._state[(bucket, key)] = (tokens, now)
            wait_ms = int((1.0 - tokens) / limit.per_second * 1000) + 1
            raise limit_exceeded(wait_ms)
        self._state[(bucket, key)] = (tokens - 1.0, now)
        self._checks += 1
        if self._checks % _PRUNE_EVERY == 0:
            self._prune(now)

    def _prune(self, now: float) -> None:
        full = [
            k
            for k, (tokens, last) in self._state.items()
            if tokens + (now - last) * self._limits[k[0]].per_second >= self._limits[k[0]].burst
        ]
        for k in full:
            del self._state[k]
