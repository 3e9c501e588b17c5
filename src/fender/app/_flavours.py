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
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._lease import LeaseConfig
from fender.ratelimit._tiered import AsyncTieredLimiter, TieredLimiter
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
    limiter: Callable[[RateLimitConfig, BreakerRegistry, Hooks, LeaseConfig], LimiterT]


def _builder(factory: Callable[..., StoreT]) -> Callable[[Settings, Hooks], StoreT]:
    return lambda settings, hooks: factory(settings, hooks=hooks)


ASGI: Flavour[AsyncResilientRedis, AsyncTieredLimiter] = Flavour(
    store=_builder(async_resilient_redis), limiter=AsyncTieredLimiter.from_settings
)
"""The asyncio parts, for ASGI apps (Starlette, FastAPI, any ASGI app)."""

WSGI: Flavour[ResilientRedis, TieredLimiter] = Flavour(
    store=_builder(resilient_redis), limiter=TieredLimiter.from_settings
)
"""The threaded parts, for WSGI apps (Flask, Django, any WSGI app)."""
