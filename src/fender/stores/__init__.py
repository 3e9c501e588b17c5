"""Stores: a bounded in-memory tier, a Redis client that degrades to it, and a JSON cache.

Example:
    >>> from fender.stores import Cache, resilient_redis
    >>> from fender.settings import load_settings
    >>> store = resilient_redis(load_settings({}, env_file=None))  # no REDIS_URL: memory only
    >>> Cache(store).get_or_set("k", lambda: [1, 2], ttl=10)
    [1, 2]
    >>> store.close()
"""

from __future__ import annotations

from fender.stores.cache import AsyncCache, Cache, CacheConfig
from fender.stores.memory import MemoryTier, TierConfig, TierEntry
from fender.stores.redis import (
    OUTAGE_ERRORS,
    REDIS_BREAKER,
    AsyncResilientRedis,
    RecoveryPolicy,
    RedisStoreConfig,
    RedisURL,
    ResilientRedis,
    Result,
    Source,
    async_redis_client,
    async_resilient_redis,
    parse_redis_url,
    redis_client,
    resilient_redis,
    store_health_check,
)

__all__ = [
    "OUTAGE_ERRORS",
    "REDIS_BREAKER",
    "AsyncCache",
    "AsyncResilientRedis",
    "Cache",
    "CacheConfig",
    "MemoryTier",
    "RecoveryPolicy",
    "RedisStoreConfig",
    "RedisURL",
    "ResilientRedis",
    "Result",
    "Source",
    "TierConfig",
    "TierEntry",
    "async_redis_client",
    "async_resilient_redis",
    "parse_redis_url",
    "redis_client",
    "resilient_redis",
    "store_health_check",
]
