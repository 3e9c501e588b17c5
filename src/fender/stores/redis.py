"""Transitional: an old import path of ``fender/web/``, until its imports name ``fender.redis``."""

from fender.stores._async import AsyncResilientRedis
from fender.stores._factory import async_resilient_redis, resilient_redis
from fender.stores._health import store_health_check
from fender.stores._sync import ResilientRedis

__all__ = [
    "AsyncResilientRedis",
    "ResilientRedis",
    "async_resilient_redis",
    "resilient_redis",
    "store_health_check",
]
