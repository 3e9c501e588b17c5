"""The resilient Redis store for threads (WSGI, workers, scripts): the sync shell.

It runs the flows of :class:`~fender.stores._core.StoreCore` against a redis-py client, and
probes Redis in a background thread while there is an outage to heal.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Self, TypeVar

from fender._clock import Clock, monotonic
from fender._flow import drive
from fender.health import CheckResult
from fender.resilience import BreakerRegistry, CircuitBreaker, default_registry
from fender.stores._commands import Flow, execute
from fender.stores._config import RedisStoreConfig
from fender.stores._memory import MemoryTier
from fender.stores._prober import ThreadProber
from fender.stores._result import Result, Source
from fender.stores._shell import StoreShell, encode

if TYPE_CHECKING:  # the client's type only: redis-py loads where a client is built
    import redis

__all__ = ["ResilientRedis"]

T = TypeVar("T")


class ResilientRedis(StoreShell):
    """A Redis store that degrades to memory: sync shell (threads, WSGI).

    Values are ``bytes`` (a ``str`` is stored UTF-8 encoded); keys are ``str``. Calls go to
    Redis through a circuit breaker; during an outage the in-memory tier answers, and a
    background thread probes Redis and settles the outage's writes once it serves again.

    Args:
        client: A redis-py client (:func:`~fender.redis.redis_client`), or ``None`` for memory
            only.
        config: Outage behaviour (:class:`~fender.redis.RedisStoreConfig`).
        tier: The in-memory tier (default bounds unless given).
        breaker: The breaker (default: ``config.name`` in ``registry`` with
            :data:`~fender.redis.REDIS_BREAKER`).
        registry: Where the default breaker lives.
        clock: Monotonic seconds.

    Example:
        >>> store = ResilientRedis(None)
        >>> store.get("missing", b"fallback")
        b'fallback'
    """

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster | None,
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
        self._execute = functools.partial(execute, client)
        self._prober = ThreadProber(
            store=core.config.name,
            interval=core.config.probe_interval,
            probe=lambda: drive(core.probe_flow(), self._execute),
            needed=lambda: core.needs_probe,
        )

    def _drive(self, flow: Flow[T]) -> T:
        result = drive(flow, self._execute)
        if self._core.needs_probe:
            self._prober.wake()
        return result

    def get_result(self, key: str, default: T = None) -> Result[bytes | T]:  # type: ignore[assignment]
        """Read ``key``; the :class:`Result` says where the value came from and how fresh it is."""
        return self._drive(self._core.get_flow(key, default))

    def get(self, key: str, default: T = None) -> bytes | T:  # type: ignore[assignment]
        """The value of ``key`` (from Redis, or the tier during an outage), else ``default``."""
        return self._drive(self._core.get_flow(key, default)).value

    def set(self, key: str, value: bytes | str, ttl: float | None = None) -> Source:
        """Store ``value`` for ``ttl`` seconds (``None``: no expiry); return where it landed."""
        return self._drive(self._core.set_flow(key, encode(value), ttl))

    def delete(self, *keys: str) -> int:
        """Delete ``keys``; return how many existed."""
        return self._drive(self._core.delete_flow(keys))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` (SCAN-based, never KEYS)."""
        return self._drive(self._core.delete_prefix_flow(prefix))

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to the integer at ``key``; ``ttl`` applies when it is created."""
        return self._drive(self._core.incr_flow(key, amount, ttl))

    def ping(self) -> bool:
        """True when Redis answers now; False while the breaker is open or without Redis."""
        return self._drive(self._core.ping_flow())

    def health(self) -> CheckResult:
        """The health verdict (see :func:`~fender.redis.store_health_check`)."""
        return self._drive(self._core.health_flow())

    def close(self) -> None:
        """Stop the prober, detach from the breaker and close the client's connections."""
        self._prober.stop()
        self._core.close()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Self:
        """The store itself; :meth:`close` on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store."""
        self.close()
