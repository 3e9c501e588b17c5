"""The I/O parts of the two protocol worlds: asyncio ones for ASGI, threaded ones for WSGI.

A flavour is the pair of builders the runtime calls; each builder makes its part from the
settings and registers the part's own start and close as hooks. The runtime holds what they
return and never asks which world it is in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from fender._hooks import Hooks
from fender.ratelimit.config import RateLimitConfig
from fender.ratelimit.limiter import AsyncTieredLimiter, TieredLimiter
from fender.resilience import BreakerRegistry
from fender.settings import Settings
from fender.stores._async import AsyncResilientRedis
from fender.stores._factory import async_resilient_redis, resilient_redis
from fender.stores._sync import ResilientRedis

__all__ = ["ASGI", "WSGI", "Flavour", "LimiterT", "StoreT"]

StoreT = TypeVar("StoreT", bound=ResilientRedis | AsyncResilientRedis)
LimiterT = TypeVar("LimiterT", bound=TieredLimiter | AsyncTieredLimiter)


@dataclass(frozen=True, slots=True)
class Flavour(Generic[StoreT, LimiterT]):
    """How one protocol world builds the resilient Redis store and the tiered limiter."""

    store: Callable[[Settings, Hooks], StoreT]
    limiter: Callable[[RateLimitConfig, BreakerRegistry, Hooks], LimiterT]


def _async_store(settings: Settings, hooks: Hooks) -> AsyncResilientRedis:
    store = async_resilient_redis(settings)
    hooks.on_shutdown(store.aclose)
    return store


def _async_limiter(
    config: RateLimitConfig, registry: BreakerRegistry, hooks: Hooks
) -> AsyncTieredLimiter:
    limiter = AsyncTieredLimiter(config, registry=registry)
    if config.enabled:  # never started when off: no heartbeat to Redis
        hooks.on_startup(limiter.start)
    hooks.on_shutdown(limiter.aclose)
    return limiter


def _sync_store(settings: Settings, hooks: Hooks) -> ResilientRedis:
    store = resilient_redis(settings)
    hooks.on_shutdown(store.close)
    return store


def _sync_limiter(
    config: RateLimitConfig, registry: BreakerRegistry, hooks: Hooks
) -> TieredLimiter:
    limiter = TieredLimiter(config, registry=registry)
    if config.enabled:
        hooks.on_startup(limiter.start)
    hooks.on_shutdown(limiter.stop)
    return limiter


ASGI: Flavour[AsyncResilientRedis, AsyncTieredLimiter] = Flavour(
    store=_async_store, limiter=_async_limiter
)
"""The asyncio parts, for ASGI apps (Starlette, FastAPI, any ASGI app)."""

WSGI: Flavour[ResilientRedis, TieredLimiter] = Flavour(store=_sync_store, limiter=_sync_limiter)
"""The threaded parts, for WSGI apps (Flask, Django, any WSGI app)."""
