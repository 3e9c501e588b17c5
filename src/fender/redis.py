"""``fender.redis``: a Redis client that degrades to an in-memory tier instead of failing.

* **Client factories** (:func:`redis_client`, :func:`async_redis_client`) build redis-py clients
  from ``REDIS_URL`` (standalone, TLS, Unix socket, Sentinel, Cluster: see
  :func:`parse_redis_url`) with explicit, short limits and no retries.
* **The resilient store** (:class:`ResilientRedis`, :class:`AsyncResilientRedis`): every call
  goes through a circuit breaker. While it is closed, reads and writes go to Redis and fill a
  bounded in-memory tier (:class:`fender.stores.MemoryTier`). Once it opens, calls are
  answered by the tier without touching the network: reads return the tier's copy (stale
  copies marked so), writes land in the tier and in an outage journal, a miss returns the
  caller's default. A background prober (a thread, or a task on the event loop) asks Redis
  whether it serves while the breaker is open (PING; on a cluster, CLUSTER INFO on every
  primary); user calls never wait on a dead Redis. When Redis serves again, the keys written
  during the outage are deleted in Redis (``invalidate``) or written back (``write_back``),
  their tier entries dropped, and the breaker closes.

Example:
    >>> from fender.settings import load_settings
    >>> store = resilient_redis(load_settings({}, env_file=None))  # no REDIS_URL: memory only
    >>> store.set("greeting", b"hello")
    <Source.MEMORY: 'memory'>
    >>> store.get_result("greeting")
    Result(value=b'hello', source=<Source.MEMORY: 'memory'>, stale=False, stale_age=0.0, ...)
    >>> store.close()
"""

from typing import Final

from fender.stores._async import AsyncResilientRedis
from fender.stores._clients import async_redis_client, redis_client
from fender.stores._config import REDIS_BREAKER, RecoveryPolicy, RedisStoreConfig, outage_errors
from fender.stores._factory import async_resilient_redis, resilient_redis
from fender.stores._health import store_health_check
from fender.stores._result import Result, Source
from fender.stores._sync import ResilientRedis
from fender.stores._url import RedisURL, parse_redis_url

__all__ = [
    "OUTAGE_ERRORS",
    "REDIS_BREAKER",
    "AsyncResilientRedis",
    "RecoveryPolicy",
    "RedisStoreConfig",
    "RedisURL",
    "ResilientRedis",
    "Result",
    "Source",
    "async_redis_client",
    "async_resilient_redis",
    "parse_redis_url",
    "redis_client",
    "resilient_redis",
    "store_health_check",
]

OUTAGE_ERRORS: Final = outage_errors()
"""Errors that mean "Redis is not serving": they count against the breaker and the tier answers.

Any other error (a ``WRONGTYPE`` reply, bad arguments) is the caller's: it propagates, and the
breaker counts the call as a success, because the server did answer.
"""
