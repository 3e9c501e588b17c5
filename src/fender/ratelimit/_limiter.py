"""Tiered rate limiting: Redis first, memory when Redis fails, back on Redis by itself.

One sans-I/O core (:class:`TierCore`) holds every decision about tiers: which tier serves a
request, the circuit breaker (named ``ratelimit``) that switches them, the local share of each
limit while on the fallback, the instance count from the heartbeat, the metrics and the log
events. :class:`TieredLimiter` (sync, a background thread) and :class:`AsyncTieredLimiter`
(asyncio, a background task) only make the Redis calls the core asks for; they differ by an
``await``, and their verbs mean the same (``start``; ``stop`` the background; ``close`` /
``aclose`` to free the client).

How a decision goes:

* Redis configured and the breaker closed: one EVALSHA covering every limit of the request,
  bounded by ``timeout`` (a client of its own with socket timeouts and no retries).
* The call fails (refused, timed out, anything): the breaker opens after ``trip_after``
  failures, and this request and every later one is decided by the fallback at once, without
  waiting on Redis. No exception reaches the caller.
* The fallback: ``local`` decides in memory with ``ceil(limit / N) * slack`` per instance,
  where N is ``instances`` or the number of live instances the heartbeat counted while Redis
  answered; ``open`` admits; ``closed`` rejects with the reason ``rate_limit_unavailable``.
* In the background, a probe tries Redis every ``probe_interval`` once the breaker's
  ``recovery_timeout`` has passed; two successes in a row close it, and traffic is back on
  Redis (about one second after Redis answers again). The probe is the heartbeat; on a
  Redis Cluster it first asks every primary for ``cluster_state:ok``
  (:class:`~fender.stores._serving.ServingCheck`), since the heartbeat reaches one shard only.
* The local counts are kept until Redis has served for three heartbeat intervals in a row:
  a Redis that comes back and fails again (a flapping one) must not hand every client a
  fresh local share at each switch.

Example:
    >>> from fender.ratelimit._config import RateLimitConfig
    >>> limiter = TieredLimiter(RateLimitConfig())  # no REDIS_URL: memory only
    >>> policy = RateLimitConfig().default
    >>> limiter.decide([("fender:rl:{203.0.113.9}:default:/", policy)]).allowed
    True
    >>> limiter.close()

This module is the public path of these names; the implementation lives in :mod:`._tiers`
(the vocabulary), :mod:`._tiercore` (the sans-I/O core) and :mod:`._tiered` (the shells).
"""

from __future__ import annotations

from fender.ratelimit._tiercore import TierCore
from fender.ratelimit._tiered import AsyncTieredLimiter, TieredLimiter
from fender.ratelimit._tiers import (
    BREAKER_NAME,
    HEARTBEAT_KEY,
    HEARTBEAT_LUA,
    STABLE_HEARTBEATS,
    UNAVAILABLE,
    Items,
    Tier,
    local_policy,
)

__all__ = [
    "BREAKER_NAME",
    "HEARTBEAT_KEY",
    "HEARTBEAT_LUA",
    "STABLE_HEARTBEATS",
    "UNAVAILABLE",
    "AsyncTieredLimiter",
    "Items",
    "Tier",
    "TierCore",
    "TieredLimiter",
    "local_policy",
]
