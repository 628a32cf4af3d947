from __future__ import annotations

import pytest

from myelin.config import RateLimit, RateLimitsConfig
from myelin.errors import MatrixError
from myelin.services.ratelimit import RateLimiter


def limiter(per_second: float, burst: int) -> RateLimiter:
    return RateLimiter(RateLimitsConfig(login=RateLimit(per_second=per_second, burst=burst)))


def test_burst_then_refill() -> None:
    rl = limiter(per_second=1.0, burst=3)
    for _ in range(3):
        rl.check("login", "k", now=100.0)
    with pytest.raises(MatrixError) as info:
        rl.check("login", "k", now=100.0)
    assert info.value.status == 429 and info.value.extra["retry_after_ms"] == 1001
    rl.check("login", "k", now=101.01)  # one token back after a second


def test_keys_are_independent() -> None:
    rl = limiter(per_second=1.0, burst=1)
    rl.check("login", "a", now=0.0)
    rl.check("login", "b", now=0.0)
    with pytest.raises(MatrixError):
        rl.check("login", "a", now=0.0)


def test_disabled_never_limits() -> None:
    rl = RateLimiter(RateLimitsConfig(enabled=False, login=RateLimit(per_second=0.001, burst=1)))
    for _ in range(100):
        rl.check("login", "a", now=0.0)
