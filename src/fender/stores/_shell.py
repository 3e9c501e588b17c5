"""What the sync and the asyncio resilient stores share: construction and I/O-free accessors."""

from __future__ import annotations

from typing import Any

from fender._clock import Clock, monotonic
from fender.resilience import BreakerRegistry, CircuitBreaker, default_registry
from fender.stores._clients import is_cluster
from fender.stores._config import RedisStoreConfig
from fender.stores._core import StoreCore
from fender.stores._memory import MemoryTier

__all__ = ["StoreShell", "encode"]


def encode(value: bytes | str) -> bytes:
    """``value`` as the bytes stored: a ``str`` UTF-8 encoded."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"values are bytes or str, not {type(value).__name__}")


class StoreShell:
    """What both shells share: construction and the I/O-free accessors."""

    def __init__(
        self,
        client: Any,
        *,
        config: RedisStoreConfig | None = None,
        tier: MemoryTier | None = None,
        breaker: CircuitBreaker | None = None,
        registry: BreakerRegistry = default_registry,
        clock: Clock = monotonic,
    ) -> None:
        """Wrap ``client`` (``None``: memory only) around a new :class:`StoreCore`."""
        self._client = client
        self._core = StoreCore(
            has_redis=client is not None,
            cluster=is_cluster(client),
            config=config,
            tier=tier,
            breaker=breaker,
            registry=registry,
            clock=clock,
        )

    @property
    def core(self) -> StoreCore:
        """The decisions (breaker, tier, journal) this shell drives."""
        return self._core

    @property
    def client(self) -> Any:
        """The redis-py client, or ``None`` for the embedded memory-only store."""
        return self._client

    @property
    def tier(self) -> MemoryTier:
        """The in-memory tier."""
        return self._core.tier

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding Redis."""
        return self._core.breaker

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but the tier serves."""
        return self._core.degraded

    def __repr__(self) -> str:
        backend = "memory" if self._client is None else type(self._client).__name__
        """The class, the store's name and its backend (never the URL: it may hold a password)."""
        return f"{type(self).__name__}({self._core.config.name!r}, backend={backend})"
