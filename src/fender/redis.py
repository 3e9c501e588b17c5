"""``fender.redis``: a Redis client that degrades to an in-memory tier instead of failing.

See :mod:`fender.stores.redis` for the behaviour around outages.
"""

from fender.stores.client import async_redis_client, redis_client
from fender.stores.redis import (
    AsyncResilientRedis,
    RecoveryPolicy,
    RedisStoreConfig,
    ResilientRedis,
    Result,
    Source,
    async_resilient_redis,
    resilient_redis,
    store_health_check,
)

__all__ = [
    "AsyncResilientRedis",
    "RecoveryPolicy",
    "RedisStoreConfig",
    "ResilientRedis",
    "Result",
    "Source",
    "async_redis_client",
    "async_resilient_redis",
    "redis_client",
    "resilient_redis",
    "store_health_check",
]
