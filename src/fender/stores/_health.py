"""The health check of a resilient store: never failing because of Redis while the tier serves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fender.health import Check, CheckResult
from fender.stores._async import AsyncResilientRedis
from fender.stores._sync import ResilientRedis

__all__ = ["store_health_check"]


def store_health_check(
    store: ResilientRedis | AsyncResilientRedis, *, name: str | None = None
) -> Check:
    """A health check for a resilient store: never fails because of Redis while the tier serves.

    ``pass`` when Redis serves (observed value: round trip in ms) or when the store is memory
    only; ``warn`` with output ``fallback: memory`` while the breaker is open and the tier
    serves (no network call is made then), or when Redis does not serve; ``fail`` only when
    the fallback is off and Redis does not serve. Redis serves when it answers PING; a
    cluster, when every primary answers CLUSTER INFO with ``cluster_state:ok`` (one live node
    does not stand for a lost shard).
    """
    check_name = store.core.config.name if name is None else name
    if isinstance(store, AsyncResilientRedis):
        async_store = store

        async def redis_async() -> CheckResult:
            return await async_store.health()

        func: Callable[[], Any] = redis_async
    else:
        func = store.health
    return Check(
        name=check_name,
        func=func,
        component=check_name,
        component_type="datastore",
        measurement="responseTime",
    )
