"""The resilient stores built from settings: ``REDIS_URL``, timeouts, outage policy, tier bounds."""

from __future__ import annotations

from typing import Any

from fender._hooks import Hooks
from fender.resilience import CircuitBreaker
from fender.settings import Settings, load_settings
from fender.stores._async import AsyncResilientRedis
from fender.stores._clients import async_redis_client, redis_client
from fender.stores._config import RecoveryPolicy, RedisStoreConfig
from fender.stores._memory import MemoryTier, TierConfig
from fender.stores._sync import ResilientRedis

__all__ = ["async_resilient_redis", "resilient_redis"]


def _from_settings(
    settings: Settings | None,
    config: RedisStoreConfig | None,
    tier: MemoryTier | TierConfig | None,
    client_options: dict[str, Any],
) -> tuple[Settings, RedisStoreConfig, MemoryTier, dict[str, Any]]:
    """What both factories read from the settings (explicit arguments win)."""
    settings = load_settings() if settings is None else settings
    if config is None:
        config = RedisStoreConfig(
            on_recovery=RecoveryPolicy(settings.redis_on_recovery),
            probe_interval=settings.redis_probe_interval,
        )
    if tier is None:
        tier = TierConfig(
            max_entries=settings.memory_tier_max_entries,
            max_bytes=int(settings.memory_tier_max_mb * 1024 * 1024),
            max_stale=settings.memory_tier_max_stale,
        )
    options = {
        "timeout": settings.network_timeout_sec,
        "max_connections": settings.redis_max_connections,
        **client_options,
    }
    return settings, config, MemoryTier(tier) if isinstance(tier, TierConfig) else tier, options


def resilient_redis(
    settings: Settings | None = None,
    *,
    config: RedisStoreConfig | None = None,
    tier: MemoryTier | TierConfig | None = None,
    breaker: CircuitBreaker | None = None,
    hooks: Hooks | None = None,
    **client_options: Any,
) -> ResilientRedis:
    """The store for ``settings``: Redis at ``REDIS_URL`` with the tier, or the tier alone.

    Args:
        settings: Default: :func:`~fender.settings.load_settings` from the environment.
        config: Outage behaviour (default: from FENDER_REDIS_* settings).
        tier: A tier or its bounds (default: from FENDER_MEMORY_TIER_* settings).
        breaker: The breaker (default: from the process-wide registry).
        hooks: An app's hooks (its runtime): the store registers its close there.
        client_options: Passed to :func:`~fender.redis.redis_client`.
    """
    settings, config, memory, options = _from_settings(settings, config, tier, client_options)
    client = redis_client(settings.redis_url, **options) if settings.redis_url else None
    store = ResilientRedis(client, config=config, tier=memory, breaker=breaker)
    if hooks is not None:
        hooks.on_shutdown(store.close)
    return store


def async_resilient_redis(
    settings: Settings | None = None,
    *,
    config: RedisStoreConfig | None = None,
    tier: MemoryTier | TierConfig | None = None,
    breaker: CircuitBreaker | None = None,
    hooks: Hooks | None = None,
    **client_options: Any,
) -> AsyncResilientRedis:
    """The asyncio store for ``settings``; same arguments as :func:`resilient_redis`."""
    settings, config, memory, options = _from_settings(settings, config, tier, client_options)
    client = async_redis_client(settings.redis_url, **options) if settings.redis_url else None
    store = AsyncResilientRedis(client, config=config, tier=memory, breaker=breaker)
    if hooks is not None:
        hooks.on_shutdown(store.aclose)
    return store
