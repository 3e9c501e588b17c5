"""The tiered limiter's vocabulary: the tiers, the names it uses in Redis, the local share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from fender.ratelimit._policy import Limit, RateLimitPolicy

__all__ = [
    "BREAKER_NAME",
    "HEARTBEAT_KEY",
    "HEARTBEAT_LUA",
    "LEAVE_LUA",
    "STABLE_HEARTBEATS",
    "UNAVAILABLE",
    "Items",
    "Tier",
    "local_policy",
]

BREAKER_NAME: Final = "ratelimit"
UNAVAILABLE: Final = "rate_limit_unavailable"
"""The ``reason`` of a decision made while no store answers (fallback ``open``/``closed``)."""
HEARTBEAT_KEY: Final = "instances"
STABLE_HEARTBEATS: Final = 3
"""Heartbeat intervals Redis must serve without a failure before the local counts are dropped
(the instance set's own horizon: an instance is gone after three missed heartbeats)."""

Items = Sequence[tuple[str, RateLimitPolicy]]
"""``(storage key, policy)`` pairs: every limit that applies to one request."""

# Registers this instance (a worker process) and counts the live ones, on the server's clock
# so that instances with skewed clocks agree. KEYS[1] the set, ARGV[1] the instance id,
# ARGV[2] the time to live in milliseconds. Returns the number of live instances.
HEARTBEAT_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
"""

LEAVE_LUA: Final = "return redis.call('ZREM', KEYS[1], ARGV[1])"
"""Leaves the instance set (KEYS[1]) at shutdown: ARGV[1] the instance id."""


class Tier(StrEnum):
    """Which store decides (the ``backend`` label of ``rate_limit_backend``)."""

    REDIS = "redis"
    MEMORY = "memory"
    NONE = "none"
    """No store: the ``open`` or ``closed`` fallback decides without counting."""


def local_policy(policy: RateLimitPolicy, instances: int, slack: float) -> RateLimitPolicy:
    """The share of ``policy`` one instance enforces alone: ``ceil(count / N) * slack``.

    The burst is shared the same way; the period and the names stay, so the headers and the
    metrics read the same on the fallback.

    Example:
        >>> from fender.ratelimit._policy import parse_policy
        >>> str(local_policy(parse_policy("100/minute"), 4, 1.5))
        '38/minute'
    """

    def share(value: int) -> int:
        return max(1, math.ceil(math.ceil(value / instances) * slack))

    limits = tuple(
        Limit(count=share(limit.count), period=limit.period, burst=share(limit.burst))
        for limit in policy.limits
    )
    return RateLimitPolicy(name=policy.name, limits=limits)
