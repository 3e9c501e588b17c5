"""The resilient Redis store for asyncio (ASGI): the asyncio shell.

It runs the flows of :class:`~fender.stores._core.StoreCore` against a ``redis.asyncio``
client, and probes Redis in a task on the event loop while there is an outage to heal.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Self, TypeVar

from fender._clock import Clock, monotonic
from fender._flow import adrive
from fender.health import CheckResult
from fender.resilience import BreakerRegistry, CircuitBreaker, default_registry
from fender.stores._clients import aclose_client
from fender.stores._commands import Flow, aexecute
from fender.stores._config import RedisStoreConfig
from fender.stores._memory import MemoryTier
from fender.stores._prober import TaskProber
from fender.stores._result import Result, Source
from fender.stores._shell import StoreShell, encode

if TYPE_CHECKING:  # the client's type only: redis-py loads where a client is built
    import redis.asyncio

__all__ = ["AsyncResilientRedis"]

T = TypeVar("T")


class AsyncResilientRedis(StoreShell):
    """A Redis store that degrades to memory: asyncio shell (ASGI).

    Same arguments and behaviour as :class:`~fender.redis.ResilientRedis`, with ``client`` a
    ``redis.asyncio`` client (:func:`~fender.redis.async_redis_client`). The prober is a task
    on the loop of the call that finds the store with an outage to heal.

    Example:
        >>> import asyncio
        >>> async def demo() -> bytes | None:
        ...     async with AsyncResilientRedis(None) as store:
        ...         await store.set("k", b"v")
        ...         return await store.get("k")
        >>> asyncio.run(demo())
        b'v'
    """

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster | None,
        *,
        config: RedisStoreConfig | None = None,
        tier: MemoryTier | None = None,
        breaker: CircuitBreaker | None = None,
        registry: BreakerRegistry = default_registry,
        clock: Clock = monotonic,
    ) -> None:
        """Wrap ``client``; see the class docstring for the arguments."""
        super().__init__(
            client, config=config, tier=tier, breaker=breaker, registry=registry, clock=clock
        )
        core = self._core
        self._execute = functools.partial(aexecute, client)
        self._prober = TaskProber(
            store=core.config.name,
            interval=core.config.probe_interval,
            probe=lambda: adrive(core.probe_flow(), self._execute),
            needed=lambda: core.needs_probe,
        )

    async def _drive(self, flow: Flow[T]) -> T:
        result = await adrive(flow, self._execute)
        if self._core.needs_probe:
            self._prober.wake()
        return result

    async def get_result(self, key: str, default: T = None) -> Result[bytes | T]:  # type: ignore[assignment]
        """Read ``key``; the :class:`Result` says where the value came from and how fresh it is."""
        return await self._drive(self._core.get_flow(key, default))

    async def get(self, key: str, default: T = None) -> bytes | T:  # type: ignore[assignment]
        """The value of ``key`` (from Redis, or the tier during an outage), else ``default``."""
        return (await self._drive(self._core.get_flow(key, default))).value

    async def set(self, key: str, value: bytes | str, ttl: float | None = None) -> Source:
        """Store ``value`` for ``ttl`` seconds (``None``: no expiry); return where it landed."""
        return await self._drive(self._core.set_flow(key, encode(value), ttl))

    async def delete(self, *keys: str) -> int:
        """Delete ``keys``; return how many existed."""
        return await self._drive(self._core.delete_flow(keys))

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` (SCAN-based, never KEYS)."""
        return await self._drive(self._core.delete_prefix_flow(prefix))

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to the integer at ``key``; ``ttl`` applies when it is created."""
        return await self._drive(self._core.incr_flow(key, amount, ttl))

    async def ping(self) -> bool:
        """True when Redis answers now; False while the breaker is open or without Redis."""
        return await self._drive(self._core.ping_flow())

    async def health(self) -> CheckResult:
        """The health verdict (see :func:`~fender.redis.store_health_check`)."""
        return await self._drive(self._core.health_flow())

    async def aclose(self) -> None:
        """Stop the prober, detach from the breaker and close the client's connections."""
        await self._prober.stop()
        self._core.close()
        if self._client is not None:
            await aclose_client(self._client)

    async def __aenter__(self) -> Self:
        """The store itself; :meth:`aclose` on exit."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the store."""
        await self.aclose()
