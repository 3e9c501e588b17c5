"""A JSON cache on the resilient Redis store, with single-flight ``get_or_set``.

Values are anything orjson serialises; keys live under a namespace (``cache:`` by default),
so :meth:`Cache.clear` and :meth:`Cache.delete_prefix` touch nothing else (SCAN-based on
Redis, never ``KEYS``). Because the store degrades to its in-memory tier, a Redis outage turns
cache reads into tier reads and misses, never into exceptions.

``get_or_set(key, loader, ttl)`` runs ``loader`` once per key at a time: concurrent callers of
the same key wait for the one computation in flight (single flight), so an expired hot key does
not send a stampede to the database. The algorithm is one generator in :class:`CacheCore`;
:class:`Cache` (threads) and :class:`AsyncCache` (asyncio) only run its steps.

Example:
    >>> from fender.redis import ResilientRedis
    >>> cache = Cache(ResilientRedis(None))
    >>> cache.get_or_set("answer", lambda: {"value": 42}, ttl=60)
    {'value': 42}
    >>> cache.get("answer")
    {'value': 42}
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, Protocol

import orjson

from fender._flow import adrive, drive
from fender.errors import ConfigurationError
from fender.observability import _metrics as metrics
from fender.stores._async import AsyncResilientRedis
from fender.stores._result import Result, Source
from fender.stores._sync import ResilientRedis

__all__ = ["AsyncCache", "Cache", "CacheConfig", "CacheCore"]

_MISS: Final = object()
_GET: Final = "get"
_SET: Final = "set"
_LOAD: Final = "load"
_WAIT: Final = "wait"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CacheConfig:
    """How a cache names its keys and how long it keeps values.

    Example:
        >>> CacheConfig(namespace="users:", default_ttl=30.0).namespace
        'users:'
    """

    name: str = "cache"
    """The ``name`` label of the cache metrics."""
    namespace: str = "cache:"
    """Prefix of every key in the store; must not be empty."""
    default_ttl: float | None = 300.0
    """Seconds a value lives when ``set`` is given no ``ttl``; ``None``: no expiry."""

    def __post_init__(self) -> None:
        """Raise :class:`~fender.errors.ConfigurationError` naming the first invalid field."""
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError("name", self.name, "a non-empty string")
        if not isinstance(self.namespace, str) or not self.namespace:
            raise ConfigurationError("namespace", self.namespace, "a non-empty key prefix")
        ttl = self.default_ttl
        if ttl is not None and (
            not isinstance(ttl, int | float) or isinstance(ttl, bool) or not ttl > 0
        ):
            raise ConfigurationError("default_ttl", ttl, "seconds > 0 or None")


class _Flight(Protocol):
    def finish(self, value: Any) -> None: ...
    def fail(self, exc: BaseException) -> None: ...


class _ThreadFlight:
    """One computation in flight, awaited by threads."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def finish(self, value: Any) -> None:
        self._value = value
        self._done.set()

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self._done.set()

    def wait(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class _TaskFlight:
    """One computation in flight, awaited by tasks of the loop that started it."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def finish(self, value: Any) -> None:
        self._future.set_result(value)

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self._future.cancel()
            return
        self._future.set_exception(exc)
        # Followers re-raise it; with none, asyncio must not log it as never retrieved.
        self._future.exception()

    async def wait(self) -> Any:
        # Shielded: a cancelled follower must not cancel the leader's result for the others.
        return await asyncio.shield(self._future)


Step = tuple[Any, ...]


class CacheCore:
    """The cache's logic without I/O: key naming, JSON, metrics and the single-flight flow.

    Args:
        config: Names and TTLs.
    """

    def __init__(self, config: CacheConfig | None = None) -> None:
        """Declare the metrics; see the class docstring."""
        config = CacheConfig() if config is None else config
        if not isinstance(config, CacheConfig):
            raise ConfigurationError("config", config, "a CacheConfig")
        self.config = config
        requests = metrics.counter(
            "cache_requests",
            "Cache lookups by result: hit, miss, or error (an undecodable value).",
            ("name", "result"),
        )
        self._hit = requests.labels(config.name, "hit")
        self._miss = requests.labels(config.name, "miss")
        self._error = requests.labels(config.name, "error")
        self._coalesced = metrics.counter(
            "cache_coalesced",
            "get_or_set calls that waited for a computation already in flight.",
            ("name",),
        ).labels(config.name)
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def key(self, key: str) -> str:
        """The store key of ``key`` (namespaced)."""
        return self.config.namespace + key

    def ttl(self, ttl: float | None) -> float | None:
        """``ttl``, or the configured default when ``None``."""
        return self.config.default_ttl if ttl is None else ttl

    @staticmethod
    def encode(value: Any) -> bytes:
        """JSON bytes of ``value`` (orjson)."""
        return orjson.dumps(value)

    def decode(self, result: Result[Any], *, count: bool = True) -> Any:
        """The cached value in a store read, or the miss marker; counts hit/miss/error."""
        if result.source is Source.DEFAULT:
            if count:
                self._miss.inc()
            return _MISS
        try:
            value = orjson.loads(result.value)
        except orjson.JSONDecodeError:
            if count:
                self._error.inc()
            return _MISS
        if count:
            self._hit.inc()
        return value

    def get(self, result: Result[Any], default: Any) -> Any:
        """What ``get`` returns for a store read: the value, or ``default``."""
        value = self.decode(result)
        return default if value is _MISS else value

    def get_or_set_flow(
        self, key: str, ttl: float | None, new_flight: Callable[[], _Flight]
    ) -> Generator[Step, Any, Any]:
        """Single flight: the first caller of a missing key loads it, the others wait for it.

        Steps yielded: ``("get", key)`` -> a store :class:`Result`; ``("load",)`` -> the
        loader's value; ``("set", key, data, ttl)``; ``("wait", flight)`` -> the leader's
        value (or its exception raised).
        """
        full = self.key(key)
        value = self.decode((yield (_GET, full)))
        if value is not _MISS:
            return value
        with self._lock:
            flight = self._flights.get(full)
            leader = flight is None
            if flight is None:
                flight = self._flights[full] = new_flight()
        if not leader:
            self._coalesced.inc()
            return (yield (_WAIT, flight))
        try:
            # Again, as the leader: the previous leader may have stored it since our miss.
            value = self.decode((yield (_GET, full)), count=False)
            if value is _MISS:
                value = yield (_LOAD,)
                yield (_SET, full, self.encode(value), self.ttl(ttl))
        except BaseException as exc:
            self._leave(full, flight)
            flight.fail(exc)
            raise
        self._leave(full, flight)
        flight.finish(value)
        return value

    def _leave(self, full: str, flight: _Flight) -> None:
        with self._lock:
            if self._flights.get(full) is flight:
                del self._flights[full]


class Cache:
    """A JSON cache on a :class:`~fender.redis.ResilientRedis` (sync shell).

    Args:
        store: The resilient store (Redis with a memory tier, or memory only).
        config: Namespace, default TTL and metric name.
    """

    def __init__(self, store: ResilientRedis, config: CacheConfig | None = None) -> None:
        """Wrap ``store``."""
        self.store = store
        self.core = CacheCore(config)

    def get(self, key: str, default: Any = None) -> Any:
        """The cached value of ``key``, or ``default``."""
        core = self.core
        return core.get(self.store.get_result(core.key(key)), default)

    def set(self, key: str, value: Any, ttl: float | None = None) -> Source:
        """Cache ``value`` (JSON-serialisable) for ``ttl`` seconds (default: the config's)."""
        core = self.core
        return self.store.set(core.key(key), core.encode(value), core.ttl(ttl))

    def delete(self, key: str) -> bool:
        """Forget ``key``; True when it was cached."""
        return self.store.delete(self.core.key(key)) > 0

    def delete_prefix(self, prefix: str) -> int:
        """Forget every key starting with ``prefix``; return how many."""
        return self.store.delete_prefix(self.core.key(prefix))

    def clear(self) -> int:
        """Forget every key of this cache's namespace."""
        return self.store.delete_prefix(self.core.config.namespace)

    def get_or_set(self, key: str, loader: Callable[[], Any], ttl: float | None = None) -> Any:
        """The cached value of ``key``, or ``loader()`` cached: one call per key at a time.

        Concurrent callers of a missing key wait for the first one's ``loader()``; if it
        raises, they all raise that exception and nothing is cached.
        """
        store = self.store

        def execute(step: Any) -> Any:
            kind = step[0]
            if kind is _GET:
                return store.get_result(step[1])
            if kind is _LOAD:
                return loader()
            if kind is _SET:
                return store.set(step[1], step[2], step[3])
            return step[1].wait()

        return drive(self.core.get_or_set_flow(key, ttl, _ThreadFlight), execute)


class AsyncCache:
    """A JSON cache on an :class:`~fender.redis.AsyncResilientRedis` (asyncio shell).

    Same behaviour as :class:`Cache`; ``loader`` may be sync or async. Single flight holds
    within one event loop.
    """

    def __init__(self, store: AsyncResilientRedis, config: CacheConfig | None = None) -> None:
        """Wrap ``store``."""
        self.store = store
        self.core = CacheCore(config)

    async def get(self, key: str, default: Any = None) -> Any:
        """The cached value of ``key``, or ``default``."""
        core = self.core
        return core.get(await self.store.get_result(core.key(key)), default)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> Source:
        """Cache ``value`` (JSON-serialisable) for ``ttl`` seconds (default: the config's)."""
        core = self.core
        return await self.store.set(core.key(key), core.encode(value), core.ttl(ttl))

    async def delete(self, key: str) -> bool:
        """Forget ``key``; True when it was cached."""
        return await self.store.delete(self.core.key(key)) > 0

    async def delete_prefix(self, prefix: str) -> int:
        """Forget every key starting with ``prefix``; return how many."""
        return await self.store.delete_prefix(self.core.key(prefix))

    async def clear(self) -> int:
        """Forget every key of this cache's namespace."""
        return await self.store.delete_prefix(self.core.config.namespace)

    async def get_or_set(
        self, key: str, loader: Callable[[], Any | Awaitable[Any]], ttl: float | None = None
    ) -> Any:
        """The cached value of ``key``, or ``loader()`` (awaited if async) cached, once per key."""
        store = self.store

        async def execute(step: Any) -> Any:
            kind = step[0]
            if kind is _GET:
                return await store.get_result(step[1])
            if kind is _LOAD:
                loaded = loader()
                return await loaded if inspect.isawaitable(loaded) else loaded
            if kind is _SET:
                return await store.set(step[1], step[2], step[3])
            return await step[1].wait()

        return await adrive(self.core.get_or_set_flow(key, ttl, _TaskFlight), execute)
