"""Rate limiting: policies, the pure GCRA and sliding-window arithmetic, memory and Redis.

Parse the policies at start-up, pick a limiter, and ask it for a :class:`Decision` per request:

    >>> from fender.ratelimit import MemoryLimiter, parse_policy
    >>> policy = parse_policy("100/minute burst 20")
    >>> decision = MemoryLimiter().hit("ip:203.0.113.9", policy)
    >>> decision.allowed, decision.remaining, policy.policy_header
    (True, 19, '"default";q=100;w=60')

The Redis limiters (:class:`RedisLimiter`, :class:`AsyncRedisLimiter`) take the same
arguments and return the same decisions, in one round trip per request.
"""

from __future__ import annotations

from fender.ratelimit._clientip import ClientIPResolver, Resolution, rate_limit_key
from fender.ratelimit._memory import MemoryLimiter
from fender.ratelimit._policy import (
    Algorithm,
    Decision,
    KeyBuilder,
    Limit,
    LimitStatus,
    RateLimitPolicy,
    parse_limit,
    parse_policy,
)
from fender.ratelimit._redis import AsyncRedisLimiter, RedisLimiter, RedisScript

__all__ = [
    "Algorithm",
    "AsyncRedisLimiter",
    "ClientIPResolver",
    "Decision",
    "KeyBuilder",
    "Limit",
    "LimitStatus",
    "MemoryLimiter",
    "RateLimitPolicy",
    "RedisLimiter",
    "RedisScript",
    "Resolution",
    "parse_limit",
    "parse_policy",
    "rate_limit_key",
]
