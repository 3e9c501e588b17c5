"""Resilient Redis: safe client settings, a circuit breaker, and an in-memory tier that serves.

Two halves:

* **Client factories** (:func:`redis_client`, :func:`async_redis_client`) build redis-py clients
  with explicit, short limits: connect and read timeouts from ``NETWORK_TIMEOUT_SEC`` (0.5 s by
  default; sub-second values are fine), a bounded connection pool that waits a short time for a
  free connection, TCP keepalive, a health check of idle connections, and **no retries**.
  redis-py 8's defaults retry ten times with backoff, which costs seconds per call against a
  dead server and close to a minute against a hung one; a retry inside a request only delays
  the breaker's verdict.
* **The resilient store** (:class:`ResilientRedis`, :class:`AsyncResilientRedis`): every call
  goes through a :class:`~fender.resilience.CircuitBreaker`. While it is closed, reads and
  writes go to Redis and fill a bounded :class:`~fender.stores.memory.MemoryTier`. Once it
  opens, calls are answered by the tier without touching the network: reads return the tier's
  copy (stale copies marked so), writes land in the tier and in an outage journal, a miss
  returns the caller's default. A background prober (a thread, or a task on the event loop)
  asks Redis whether it serves while the breaker is open (PING; on a cluster, CLUSTER INFO on
  every primary: see :mod:`fender.stores.serving`); user calls never wait on a dead Redis.
  When Redis serves again, the keys written during the outage are deleted in Redis
  (``invalidate``) or written back (``write_back``), their tier entries dropped, and the
  breaker closes.

The decisions live in one sans-I/O class, :class:`StoreCore`: each operation is a generator
that yields the Redis commands it needs and receives their replies (the pattern of
``httpx._auth``). :class:`ResilientRedis` and :class:`AsyncResilientRedis` only run those
commands, with and without ``await``.

URL forms accepted by the factories (``REDIS_URL``):

* ``redis://[[user]:password@]host[:port][/db][?option=value...]``: TCP.
* ``rediss://...``: TCP with TLS (certificates verified).
* ``unix://[[user]:password@]/path/to/redis.sock[?db=N...]``: a Unix socket.
* ``redis+sentinel://[[user]:password@]host1[:26379][,host2[:port]...]/service[/db][?...]``:
  the master of ``service`` found through Sentinel. ``user``/``password`` authenticate to the
  master; ``?sentinel_password=...`` (and ``sentinel_username``) to the Sentinels;
  ``?ssl=true`` for TLS.
* ``redis+cluster://[[user]:password@]host1[:6379][,host2[:port]...][?ssl=true]``: Redis
  Cluster from the given startup nodes. The sync cluster client connects when it is built.

Other query options of the ``redis://`` forms are passed to redis-py (and win over ours).

Example:
    >>> from fender.settings import load_settings
    >>> store = resilient_redis(load_settings({}, env_file=None))  # no REDIS_URL: memory only
    >>> store.set("greeting", b"hello")
    <Source.MEMORY: 'memory'>
    >>> store.get_result("greeting")
    Result(value=b'hello', source=<Source.MEMORY: 'memory'>, stale=False, stale_age=0.0, ...)
    >>> store.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import math
import re
import threading
from collections.abc import Callable, Generator
from typing import Any, Final, Generic, Self, TypeAlias, TypeVar

import redis
import redis.asyncio
from redis import exceptions as redis_errors

from fender._clock import Clock, monotonic
from fender._status import Status
from fender.errors import ConfigurationError
from fender.health import Check, CheckResult
from fender.observability import metrics
from fender.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    StateTransition,
    default_registry,
)
from fender.settings import Settings, load_settings
from fender.stores.client import (
    RedisURL,
    async_redis_client,
    parse_redis_url,
    redis_client,
    seconds_ok,
)
from fender.stores.closing import aclose_client
from fender.stores.memory import MemoryTier, TierConfig
from fender.stores.serving import Op, ServingCheck, adrive, drive, is_cluster

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
    "StoreCore",
    "async_redis_client",
    "async_resilient_redis",
    "parse_redis_url",
    "redis_client",
    "resilient_redis",
    "store_health_check",
]

logger = logging.getLogger("fender.stores")

T = TypeVar("T")

OUTAGE_ERRORS: Final[tuple[type[BaseException], ...]] = (
    redis_errors.ConnectionError,  # refused, reset, pool exhausted, still loading, auth lost
    redis_errors.TimeoutError,
    redis_errors.InvalidResponse,  # a proxy or a half-dead server speaking garbage
    redis_errors.ReadOnlyError,  # a replica promoted under us: writes cannot land
    redis_errors.ClusterError,  # cluster down, slots moving
    redis_errors.TryAgainError,
    redis_errors.RedisClusterException,
    OSError,  # the socket layer and asyncio's TimeoutError
)
"""Errors that mean "Redis is not serving": they count against the breaker and the tier answers.

Any other error (a ``WRONGTYPE`` reply, bad arguments) is the caller's: it propagates, and the
breaker counts the call as a success, because the server did answer.
"""

REDIS_BREAKER: Final = BreakerConfig(
    failure_threshold=5,
    failure_rate_threshold=50.0,
    # A hung Redis ends in a socket timeout (a failure); the slow-call rule would only repeat it.
    slow_call_rate_threshold=None,
    minimum_number_of_calls=20,
    recovery_timeout=2.0,
    recovery_timeout_multiplier=2.0,
    max_recovery_timeout=30.0,
    permitted_calls_in_half_open=1,
    success_threshold=2,
)
"""The breaker fender's Redis store uses unless given one: five straight failures trip it."""

_ADMITTING: Final = frozenset(
    {BreakerState.CLOSED, BreakerState.DISABLED, BreakerState.METRICS_ONLY}
)
_JOURNAL_BATCH: Final = 500
_DELETE_MATCHING: Final = "_delete_matching"
_GLOB_SPECIALS: Final = re.compile(r"([*?\[\]\\])")

Command: TypeAlias = tuple[Op, ...]
"""What a flow asks the shell to run: one op, or several sent as one pipeline."""
Flow: TypeAlias = Generator[Command, Any, T]


class Source(enum.StrEnum):
    """Where an answer came from."""

    REDIS = "redis"
    MEMORY = "memory"
    """The in-memory tier: Redis is down (or not configured)."""
    DEFAULT = "default"
    """Nowhere: a miss during an outage; the caller's default was returned."""
    DROPPED = "dropped"
    """A write nobody stored: Redis is down and the fallback is off."""


class RecoveryPolicy(enum.StrEnum):
    """What happens in Redis to the keys written locally during an outage."""

    INVALIDATE = "invalidate"
    """Delete them: the next read misses and reloads (right for caches and counters)."""
    WRITE_BACK = "write_back"
    """Write the local values back with their remaining TTL (last writer wins)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """A read's answer and its provenance.

    Args:
        value: The value, or the caller's default when ``source`` is ``default``.
        source: ``redis``, ``memory`` (the tier) or ``default`` (nothing found).
        stale: True when the tier's copy is past its TTL (kept for ``max_stale``).
        stale_age: Seconds past the TTL; 0 when fresh.
        degraded: True when Redis is configured but did not answer this read.
    """

    value: T
    source: Source
    stale: bool = False
    stale_age: float = 0.0
    degraded: bool = False

    def __repr__(self) -> str:
        """Value, source and staleness (``degraded`` elided)."""
        return (
            f"Result(value={self.value!r}, source={self.source!r}, stale={self.stale}, "
            f"stale_age={self.stale_age}, ...)"
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RedisStoreConfig:
    """How a resilient store behaves around outages; immutable, validated when built.

    Example:
        >>> RedisStoreConfig(on_recovery="write_back").on_recovery
        <RecoveryPolicy.WRITE_BACK: 'write_back'>
    """

    name: str = "redis"
    """Names the breaker (in its registry), the ``name`` label of the metrics and the logs."""
    on_recovery: RecoveryPolicy = RecoveryPolicy.INVALIDATE
    """What to do in Redis with the keys written locally during an outage."""
    probe_interval: float = 0.5
    """Seconds between background probes while the breaker is open."""
    fallback: bool = True
    """Serve from the tier during an outage; off, reads return the default, writes are dropped
    and the health check fails instead of warning."""
    max_journal: int = 100_000
    """Keys the outage journal remembers; past it, writes still land in the tier but are not
    reconciled (counted and logged: those keys may be stale in Redis after the outage)."""

    def __post_init__(self) -> None:
        """Raise :class:`~fender.errors.ConfigurationError` naming the first invalid field."""
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", self.name):
            raise ConfigurationError("name", self.name, "1-64 letters, digits, '_', '.' or '-'")
        try:
            object.__setattr__(self, "on_recovery", RecoveryPolicy(self.on_recovery))
        except ValueError:
            raise ConfigurationError(
                "on_recovery", self.on_recovery, "'invalidate' or 'write_back'"
            ) from None
        if not seconds_ok(self.probe_interval):
            raise ConfigurationError("probe_interval", self.probe_interval, "seconds > 0")
        if not isinstance(self.fallback, bool):
            raise ConfigurationError("fallback", self.fallback, "True or False")
        if not isinstance(self.max_journal, int) or isinstance(self.max_journal, bool):
            raise ConfigurationError("max_journal", self.max_journal, "an integer >= 0")
        if self.max_journal < 0:
            raise ConfigurationError("max_journal", self.max_journal, "an integer >= 0")


# -- metrics ---------------------------------------------------------------------------------------


class _Metrics:
    """The store's metric children for one ``name``, resolved once."""

    __slots__ = (
        "backend_memory",
        "backend_redis",
        "errors",
        "name",
        "read_hit",
        "read_miss",
        "read_stale",
        "tier_bytes",
        "tier_entries",
        "writes",
    )

    def __init__(self, name: str) -> None:
        reads = metrics.counter(
            "redis_fallback_reads",
            "Reads answered by the in-memory tier while Redis was down, by result.",
            ("name", "result"),
        )
        self.read_hit = reads.labels(name, "hit")
        self.read_stale = reads.labels(name, "stale")
        self.read_miss = reads.labels(name, "miss")
        writes = metrics.counter(
            "redis_fallback_writes",
            "Writes taken by the in-memory tier while Redis was down, by operation.",
            ("name", "op"),
        )
        self.writes = {op: writes.labels(name, op) for op in ("set", "delete", "incr")}
        self.tier_entries = metrics.gauge(
            "redis_tier_entries", "Entries in the in-memory tier.", ("name",)
        ).labels(name)
        self.tier_bytes = metrics.gauge(
            "redis_tier_bytes", "Bytes held by the in-memory tier.", ("name",)
        ).labels(name)
        backend = metrics.gauge(
            "redis_backend",
            "1 for the backend serving this store (redis or memory); summed over workers.",
            ("name", "backend"),
        )
        self.backend_redis = backend.labels(name, "redis")
        self.backend_memory = backend.labels(name, "memory")
        self.errors = metrics.LabelGuard(
            metrics.counter(
                "redis_errors", "Redis calls that failed, by error class.", ("name", "error")
            ),
            max_series=32,
            overflow_index=1,
        )
        self.name = name

    def serving(self, source: Source) -> None:
        self.backend_redis.set(1 if source is Source.REDIS else 0)
        self.backend_memory.set(1 if source is Source.MEMORY else 0)


# -- the sans-I/O core -----------------------------------------------------------------------------


class _Down:
    """The marker a guarded command returns when Redis did not answer."""

    __slots__ = ()


_DOWN: Final = _Down()


def _op(name: str, *args: Any, **kwargs: Any) -> Op:
    return (name, args, kwargs)


def _glob_escape(prefix: str) -> str:
    return _GLOB_SPECIALS.sub(r"\\\1", prefix) + "*"


class StoreCore:
    """Every decision of the resilient store, without I/O: the sync and async shells drive it.

    Each public ``*_flow`` method is a generator: it yields a :data:`Command` to run against
    Redis and receives the reply (or has the exception thrown in); its return value is the
    operation's result. When the store is degraded a flow returns at once, yielding nothing.

    Args:
        has_redis: False for the embedded, memory-only store.
        cluster: Redis is a cluster: health and recovery ask every primary, not one node
            (see :class:`~fender.stores.serving.ServingCheck`).
        config: Outage behaviour.
        tier: The in-memory tier (default: a :class:`MemoryTier` with default bounds).
        breaker: The breaker guarding Redis (default: ``config.name`` from ``registry``).
        registry: Where the default breaker is found or created (with :data:`REDIS_BREAKER`).
        clock: Monotonic seconds for call durations and outage lengths.
    """

    def __init__(
        self,
        *,
        has_redis: bool,
        cluster: bool = False,
        config: RedisStoreConfig | None = None,
        tier: MemoryTier | None = None,
        breaker: CircuitBreaker | None = None,
        registry: BreakerRegistry = default_registry,
        clock: Clock = monotonic,
    ) -> None:
        """Build the core; see the class docstring for the arguments."""
        config = RedisStoreConfig() if config is None else config
        if not isinstance(config, RedisStoreConfig):
            raise ConfigurationError("config", config, "a RedisStoreConfig")
        self.config = config
        self.has_redis = has_redis
        self.serving_check = ServingCheck(cluster=cluster)
        self.tier = MemoryTier(clock=clock) if tier is None else tier
        if breaker is None:
            # Without Redis the breaker guards nothing: keep it out of the shared registry.
            breaker = (
                registry.get_or_create(config.name, REDIS_BREAKER)
                if has_redis
                else CircuitBreaker(config.name, REDIS_BREAKER, clock=clock)
            )
        self.breaker = breaker
        self._clock = clock
        self._metrics = _Metrics(config.name)
        self._lock = threading.Lock()
        # The outage journal: keys and prefixes written locally, with a sequence number so
        # that reconciling a key does not forget a newer local write made meanwhile.
        self._journal: dict[str, int] = {}
        self._journal_prefixes: dict[str, int] = {}
        self._seq = 0
        self._outage_started = 0.0
        self._outage_reads = 0
        self._outage_writes = 0
        self._reconciled = 0
        self._journal_overflow = 0
        self._degraded = has_redis and self.breaker.state not in _ADMITTING
        self._unsubscribe = (
            self.breaker.add_transition_listener(self._on_transition) if has_redis else None
        )
        self._metrics.serving(Source.MEMORY if self._degraded or not has_redis else Source.REDIS)
        self._update_size()

    # -- state -----------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but the tier serves (the breaker is not closed).

        Read from the breaker itself: its listeners (the log events, the metrics) run just
        after its state changes, and a reader must never see the two disagree.
        """
        return self.has_redis and self.breaker.state not in _ADMITTING

    @property
    def needs_probe(self) -> bool:
        """True while a background probe has work: Redis to watch or outage writes to settle."""
        return self.has_redis and (
            self._degraded or bool(self._journal) or bool(self._journal_prefixes)
        )

    @property
    def pending(self) -> int:
        """Keys and prefixes written during an outage and not yet settled in Redis."""
        return len(self._journal) + len(self._journal_prefixes)

    def close(self) -> None:
        """Stop listening to the breaker (which may outlive this store in its registry)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_transition(self, event: StateTransition) -> None:
        degraded = event.to_state not in _ADMITTING
        was = self._degraded
        self._degraded = degraded
        if degraded and not was:
            self._outage_started = self._clock()
            self._outage_reads = self._outage_writes = self._reconciled = 0
            self._journal_overflow = 0
            self._metrics.serving(Source.MEMORY if self.config.fallback else Source.DEFAULT)
            logger.warning(
                "redis fallback engaged",
                extra={
                    "store": self.config.name,
                    "breaker_state": event.to_state.value,
                    "fallback": "memory" if self.config.fallback else "none",
                    "tier_entries": len(self.tier),
                },
            )
        elif was and not degraded:
            self._metrics.serving(Source.REDIS)
            logger.info(
                "redis recovered",
                extra={
                    "store": self.config.name,
                    "outage_seconds": round(self._clock() - self._outage_started, 3),
                    "fallback_reads": self._outage_reads,
                    "fallback_writes": self._outage_writes,
                    "reconciled": self._reconciled,
                    "unreconciled": self.pending,
                    "journal_overflow": self._journal_overflow,
                    "policy": self.config.on_recovery.value,
                },
            )

    def _local_only(self, key: str) -> bool:
        """True when ``key`` must be answered locally even though the breaker admits calls.

        Between the breaker closing and the prober settling the outage journal, Redis may still
        hold an older value of a key written locally; the tier's is the newer one.
        """
        if self._degraded:
            return True
        if self._journal or self._journal_prefixes:
            with self._lock:
                return key in self._journal or any(map(key.startswith, self._journal_prefixes))
        return False

    def _guarded(self, command: Command, verify: Callable[[Any], None] | None = None) -> Flow[Any]:
        """Run ``command`` through the breaker; return its reply, or ``_DOWN``.

        ``verify`` judges the reply: an outage error it raises counts as the call's failure.
        """
        permit = self.breaker.try_acquire()
        if permit is None:
            return _DOWN
        clock = self._clock
        started = clock()
        try:
            reply = yield command
            if verify is not None:
                verify(reply)
        except OUTAGE_ERRORS as exc:
            self.breaker.on_error(exc, clock() - started, permit)
            self._metrics.errors.child(self.config.name, type(exc).__name__).inc()
            return _DOWN
        except Exception:
            # The server answered (with an error of the caller's making): Redis is up.
            self.breaker.on_success(clock() - started, permit)
            raise
        except BaseException as exc:
            self.breaker.on_error(exc, clock() - started, permit)  # cancelled: neither
            raise
        self.breaker.on_success(clock() - started, permit)
        return reply

    def _update_size(self) -> None:
        self._metrics.tier_entries.set(len(self.tier))
        self._metrics.tier_bytes.set(self.tier.nbytes)

    def _journal_key(self, key: str) -> None:
        with self._lock:
            if key not in self._journal and len(self._journal) >= self.config.max_journal:
                self._journal_overflow += 1
                if self._journal_overflow == 1:
                    logger.warning(
                        "redis outage journal full",
                        extra={"store": self.config.name, "max_journal": self.config.max_journal},
                    )
                return
            self._seq += 1
            self._journal[key] = self._seq

    def _settled(self, key: str) -> None:
        """A write of ``key`` reached Redis: nothing older of it is left to reconcile."""
        if self._journal:
            with self._lock:
                self._journal.pop(key, None)

    # -- reads -----------------------------------------------------------------------------------

    def _read_local(self, key: str, default: T) -> Result[bytes | T]:
        degraded = self.has_redis
        entry = self.tier.lookup(key) if self.config.fallback or not degraded else None
        if degraded:
            self._outage_reads += 1
        if entry is None:
            if degraded:
                self._metrics.read_miss.inc()
            return Result(default, Source.DEFAULT, degraded=degraded)
        if degraded:
            (self._metrics.read_stale if entry.stale else self._metrics.read_hit).inc()
        return Result(entry.value, Source.MEMORY, entry.stale, entry.stale_age, degraded=degraded)

    def get_flow(self, key: str, default: T) -> Flow[Result[bytes | T]]:
        """Read ``key``: from Redis (filling the tier with its TTL) or from the tier."""
        if not self.has_redis or self._local_only(key):
            return self._read_local(key, default)
        reply = yield from self._guarded((_op("get", key), _op("pttl", key)))
        if reply is _DOWN:
            return self._read_local(key, default)
        value, pttl = reply
        if value is None:
            self.tier.delete(key)
            self._update_size()
            return Result(default, Source.DEFAULT)
        if self.config.fallback:
            # PTTL is -1 for no expiry, -2 if the key expired between the two commands.
            if pttl == -2:  # noqa: PLR2004  (Redis's "no such key")
                self.tier.delete(key)
            else:
                self.tier.set(key, value, pttl / 1000 if pttl > 0 else None)
            self._update_size()
        return Result(value, Source.REDIS)

    # -- writes ----------------------------------------------------------------------------------

    def _write_local(self, op: str, key: str) -> Source:
        self._outage_writes += 1
        self._metrics.writes[op].inc()
        self._journal_key(key)
        self._update_size()
        return Source.MEMORY

    def set_flow(self, key: str, value: bytes, ttl: float | None) -> Flow[Source]:
        """Write ``key``: to Redis (and the tier), or during an outage to the tier alone."""
        tier = self.tier
        if self.has_redis and not self._degraded:
            px = {} if ttl is None else {"px": max(1, math.ceil(ttl * 1000))}
            reply = yield from self._guarded((_op("set", key, value, **px),))
            if reply is not _DOWN:
                if self.config.fallback:
                    tier.set(key, value, ttl)
                    self._update_size()
                self._settled(key)
                return Source.REDIS
        if not self.has_redis:
            tier.set(key, value, ttl)
            self._update_size()
            return Source.MEMORY
        if not self.config.fallback:
            return Source.DROPPED
        tier.set(key, value, ttl)
        return self._write_local("set", key)

    def delete_flow(self, keys: tuple[str, ...]) -> Flow[int]:
        """Delete ``keys``; return how many existed (in Redis, or in the tier when it serves)."""
        tier = self.tier
        if self.has_redis and not self._degraded and keys:
            reply = yield from self._guarded((_op("delete", *keys),))
            if reply is not _DOWN:
                for key in keys:
                    tier.delete(key)
                    self._settled(key)
                self._update_size()
                return int(reply)
        deleted = sum(tier.delete(key) for key in keys)
        if self.has_redis and self.config.fallback:
            for key in keys:
                self._write_local("delete", key)
        else:
            self._update_size()
        return deleted

    def delete_prefix_flow(self, prefix: str) -> Flow[int]:
        """Delete every key starting with ``prefix`` (SCAN + UNLINK on Redis, never KEYS)."""
        if not prefix:
            raise ValueError("an empty prefix would delete everything; refusing")
        tier = self.tier
        if self.has_redis and not self._degraded:
            reply = yield from self._guarded((_op(_DELETE_MATCHING, _glob_escape(prefix)),))
            if reply is not _DOWN:
                tier.delete_prefix(prefix)
                self._update_size()
                if self._journal:
                    with self._lock:
                        for key in [k for k in self._journal if k.startswith(prefix)]:
                            del self._journal[key]
                return int(reply)
        deleted = tier.delete_prefix(prefix)
        if self.has_redis and self.config.fallback:
            self._outage_writes += 1
            self._metrics.writes["delete"].inc()
            with self._lock:
                self._seq += 1
                self._journal_prefixes[prefix] = self._seq
        self._update_size()
        return deleted

    def incr_flow(self, key: str, amount: int, ttl: float | None) -> Flow[int]:
        """Add ``amount`` to the counter at ``key``; ``ttl`` is set when the key is created.

        During an outage the tier counts alone (this worker's increments only); with the
        fallback off the result is 0.
        """
        tier = self.tier
        if self.has_redis and not self._degraded:
            reply = yield from self._guarded((_op("incrby", key, amount), _op("pttl", key)))
            if reply is not _DOWN:
                value, pttl = int(reply[0]), int(reply[1])
                if ttl is not None and pttl == -1:
                    ms = max(1, math.ceil(ttl * 1000))
                    # Best effort: if this fails the counter lives on without a TTL until the
                    # next increment that finds none sets it.
                    if (yield from self._guarded((_op("pexpire", key, ms),))) is not _DOWN:
                        pttl = ms
                if self.config.fallback:
                    tier.set(key, str(value).encode(), pttl / 1000 if pttl > 0 else None)
                    self._update_size()
                self._settled(key)
                return value
        if self.has_redis and not self.config.fallback:
            return 0
        value = tier.incr(key, amount, ttl)
        if not self.has_redis:
            self._update_size()
            return value
        self._write_local("incr", key)
        return value

    # -- health and recovery ---------------------------------------------------------------------

    def _ask_serving(self) -> Flow[Any]:
        """Through the breaker: is Redis serving (on a cluster, every primary)? Else ``_DOWN``."""
        check = self.serving_check
        return (yield from self._guarded((check.command,), check.verify))

    def ping_flow(self) -> Flow[bool]:
        """True when Redis serves now (False at once while the breaker is open).

        A server is asked PING; a cluster, CLUSTER INFO on every primary (see
        :class:`~fender.stores.serving.ServingCheck`).
        """
        if not self.has_redis or self._degraded:
            return False
        return (yield from self._ask_serving()) is not _DOWN

    def health_flow(self) -> Flow[CheckResult]:
        """The health check's verdict: pass, warn while the tier serves, fail without fallback."""
        if not self.has_redis:
            return CheckResult(Status.PASS, "embedded memory tier", details={"backend": "memory"})
        clock = self._clock
        started = clock()
        if not self._degraded and (yield from self._ask_serving()) is not _DOWN:
            return CheckResult(
                Status.PASS,
                observed_value=round((clock() - started) * 1000, 3),
                observed_unit="ms",
                details={"backend": "redis"},
            )
        details = {"backend": "memory" if self.config.fallback else "none",
                   "breaker": self.breaker.state.value, "tier_entries": len(self.tier),
                   "pending_writes": self.pending}  # fmt: skip
        if self.config.fallback:
            return CheckResult(Status.WARN, "fallback: memory", details=details)
        return CheckResult(Status.FAIL, "redis unavailable, no fallback", details=details)

    def probe_flow(self) -> Flow[bool]:
        """One background probe; returns True when there is nothing left to probe for.

        While the breaker is open the probe asks it for a trial (it says no until its recovery
        timeout has passed), asks whether Redis serves (PING; on a cluster, every primary must
        report ``cluster_state:ok``: one live node does not stand for a lost shard), settles
        the outage journal, and reports the trial: the journal is settled before the last trial
        closes the breaker, so no user read reaches Redis while it may still hold a value
        older than the tier's.
        """
        breaker = self.breaker
        if not self._degraded:
            yield from self._reconcile_quietly()
            return not self.needs_probe
        permit = breaker.try_acquire()
        if permit is None:
            return False
        clock = self._clock
        started = clock()
        check = self.serving_check
        try:
            check.verify((yield (check.command,)))
            yield from self._reconcile()
        except Exception as exc:
            breaker.on_error(exc, clock() - started, permit)
            self._metrics.errors.child(self.config.name, type(exc).__name__).inc()
            if not isinstance(exc, OUTAGE_ERRORS):
                logger.warning(
                    "redis probe failed",
                    extra={"store": self.config.name, "error": type(exc).__name__},
                )
            return False
        except BaseException as exc:
            breaker.on_error(exc, clock() - started, permit)
            raise
        breaker.on_success(clock() - started, permit)
        return not self.needs_probe

    def _reconcile_quietly(self) -> Flow[None]:
        try:
            yield from self._reconcile()
        except Exception as exc:
            # Settled on the next probe; meanwhile reads of those keys stay local.
            self._metrics.errors.child(self.config.name, type(exc).__name__).inc()

    def _reconcile(self) -> Flow[None]:
        """Settle the outage journal in Redis by the policy, then drop those tier entries."""
        with self._lock:
            keys = dict(self._journal)
            prefixes = dict(self._journal_prefixes)
        if not keys and not prefixes:
            return
        # Prefixes first: a key written after its prefix was deleted must survive both.
        for prefix in prefixes:
            yield (_op(_DELETE_MATCHING, _glob_escape(prefix)),)
        write_back = self.config.on_recovery is RecoveryPolicy.WRITE_BACK
        ops: list[Op] = []
        for key in keys:
            found = self.tier.peek(key) if write_back else None
            if found is None:
                ops.append(_op("delete", key))
            else:
                value, remaining = found
                px = {} if remaining is None else {"px": max(1, math.ceil(remaining * 1000))}
                ops.append(_op("set", key, value, **px))
        for start in range(0, len(ops), _JOURNAL_BATCH):
            yield tuple(ops[start : start + _JOURNAL_BATCH])
        with self._lock:
            for prefix, seq in prefixes.items():
                if self._journal_prefixes.get(prefix) == seq:
                    del self._journal_prefixes[prefix]
            for key, seq in keys.items():
                if self._journal.get(key) == seq:
                    del self._journal[key]
                    self.tier.delete(key)
        self._reconciled += len(keys) + len(prefixes)
        self._update_size()


# -- the shells ------------------------------------------------------------------------------------


def _encode(value: bytes | str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"values are bytes or str, not {type(value).__name__}")


class _Base:
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
        return f"{type(self).__name__}({self._core.config.name!r}, backend={backend})"


class ResilientRedis(_Base):
    """A Redis store that degrades to memory: sync shell (threads, WSGI).

    Values are ``bytes`` (a ``str`` is stored UTF-8 encoded); keys are ``str``.

    Args:
        client: A redis-py client (:func:`redis_client`), or ``None`` for memory only.
        config: Outage behaviour (:class:`RedisStoreConfig`).
        tier: The in-memory tier (default bounds unless given).
        breaker: The breaker (default: ``config.name`` in ``registry`` with
            :data:`REDIS_BREAKER`).
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
        self._probe_lock = threading.Lock()
        self._probe_thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- driver ----------------------------------------------------------------------------------

    def _drive(self, flow: Flow[T]) -> T:
        result = drive(flow, self._execute)
        if self._core.needs_probe and self._probe_thread is None:
            self._start_probe()
        return result

    def _execute(self, command: Command) -> Any:
        client = self._client
        if len(command) == 1:
            name, args, kwargs = command[0]
            if name == _DELETE_MATCHING:
                return self._delete_matching(args[0])
            return getattr(client, name)(*args, **kwargs)
        pipe = client.pipeline(transaction=False)
        for name, args, kwargs in command:
            getattr(pipe, name)(*args, **kwargs)
        return pipe.execute()

    def _delete_matching(self, pattern: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=pattern, count=_JOURNAL_BATCH):
            batch.append(key)
            if len(batch) >= _JOURNAL_BATCH:
                deleted += self._client.unlink(*batch)
                batch = []
        if batch:
            deleted += self._client.unlink(*batch)
        return deleted

    def _start_probe(self) -> None:
        with self._probe_lock:
            if self._probe_thread is not None or self._stop.is_set():
                return
            thread = threading.Thread(
                target=self._probe_loop, name=f"fender-{self._core.config.name}-probe", daemon=True
            )
            self._probe_thread = thread
        thread.start()

    def _probe_loop(self) -> None:
        core = self._core
        try:
            while not self._stop.wait(core.config.probe_interval):
                try:
                    if self._drive_probe():
                        break
                except Exception:
                    logger.exception("redis probe crashed", extra={"store": core.config.name})
        finally:
            with self._probe_lock:
                self._probe_thread = None
        # A write journaled between the last probe and the exit above must still be settled.
        if core.needs_probe and not self._stop.is_set():
            self._start_probe()

    def _drive_probe(self) -> bool:
        return drive(self._core.probe_flow(), self._execute)

    # -- API -------------------------------------------------------------------------------------

    def get_result(self, key: str, default: T = None) -> Result[bytes | T]:  # type: ignore[assignment]
        """Read ``key``; the :class:`Result` says where the value came from and how fresh it is."""
        return self._drive(self._core.get_flow(key, default))

    def get(self, key: str, default: T = None) -> bytes | T:  # type: ignore[assignment]
        """The value of ``key`` (from Redis, or the tier during an outage), else ``default``."""
        return self._drive(self._core.get_flow(key, default)).value

    def set(self, key: str, value: bytes | str, ttl: float | None = None) -> Source:
        """Store ``value`` for ``ttl`` seconds (``None``: no expiry); return where it landed."""
        return self._drive(self._core.set_flow(key, _encode(value), ttl))

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
        """The health verdict (see :func:`store_health_check`)."""
        return self._drive(self._core.health_flow())

    def close(self) -> None:
        """Stop the prober, detach from the breaker and close the client's connections."""
        self._stop.set()
        thread = self._probe_thread
        if thread is not None:
            thread.join(timeout=5.0)
        self._core.close()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncResilientRedis(_Base):
    """A Redis store that degrades to memory: asyncio shell (ASGI).

    Same arguments and behaviour as :class:`ResilientRedis`, with ``client`` a
    ``redis.asyncio`` client (:func:`async_redis_client`). The prober is a task on the loop
    that first finds the store degraded.

    Example:
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
        self._probe_task: asyncio.Task[None] | None = None
        self._closed = False

    async def _drive(self, flow: Flow[T]) -> T:
        result = await adrive(flow, self._execute)
        if self._core.needs_probe and self._probe_task is None and not self._closed:
            self._probe_task = asyncio.get_running_loop().create_task(
                self._probe_loop(), name=f"fender-{self._core.config.name}-probe"
            )
        return result

    async def _execute(self, command: Command) -> Any:
        client = self._client
        if len(command) == 1:
            name, args, kwargs = command[0]
            if name == _DELETE_MATCHING:
                return await self._delete_matching(args[0])
            return await getattr(client, name)(*args, **kwargs)
        pipe = client.pipeline(transaction=False)
        for name, args, kwargs in command:
            getattr(pipe, name)(*args, **kwargs)
        return await pipe.execute()

    async def _delete_matching(self, pattern: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        async for key in self._client.scan_iter(match=pattern, count=_JOURNAL_BATCH):
            batch.append(key)
            if len(batch) >= _JOURNAL_BATCH:
                deleted += await self._client.unlink(*batch)
                batch = []
        if batch:
            deleted += await self._client.unlink(*batch)
        return int(deleted)

    async def _probe_loop(self) -> None:
        core = self._core
        try:
            while True:
                await asyncio.sleep(core.config.probe_interval)
                try:
                    if await self._drive_probe():
                        break
                except Exception:
                    logger.exception("redis probe crashed", extra={"store": core.config.name})
        finally:
            self._probe_task = None

    async def _drive_probe(self) -> bool:
        return await adrive(self._core.probe_flow(), self._execute)

    # -- API -------------------------------------------------------------------------------------

    async def get_result(self, key: str, default: T = None) -> Result[bytes | T]:  # type: ignore[assignment]
        """Read ``key``; the :class:`Result` says where the value came from and how fresh it is."""
        return await self._drive(self._core.get_flow(key, default))

    async def get(self, key: str, default: T = None) -> bytes | T:  # type: ignore[assignment]
        """The value of ``key`` (from Redis, or the tier during an outage), else ``default``."""
        return (await self._drive(self._core.get_flow(key, default))).value

    async def set(self, key: str, value: bytes | str, ttl: float | None = None) -> Source:
        """Store ``value`` for ``ttl`` seconds (``None``: no expiry); return where it landed."""
        return await self._drive(self._core.set_flow(key, _encode(value), ttl))

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
        """The health verdict (see :func:`store_health_check`)."""
        return await self._drive(self._core.health_flow())

    async def aclose(self) -> None:
        """Cancel the prober, detach from the breaker and close the client's connections."""
        self._closed = True
        task = self._probe_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._core.close()
        if self._client is not None:
            await aclose_client(self._client)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# -- health ----------------------------------------------------------------------------------------


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


# -- client factories ------------------------------------------------------------------------------


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
    **client_options: Any,
) -> ResilientRedis:
    """The store for ``settings``: Redis at ``REDIS_URL`` with the tier, or the tier alone.

    Args:
        settings: Default: :func:`~fender.settings.load_settings` from the environment.
        config: Outage behaviour (default: from FENDER_REDIS_* settings).
        tier: A tier or its bounds (default: from FENDER_MEMORY_TIER_* settings).
        breaker: The breaker (default: from the process-wide registry).
        client_options: Passed to :func:`redis_client`.
    """
    settings, config, memory, options = _from_settings(settings, config, tier, client_options)
    client = redis_client(settings.redis_url, **options) if settings.redis_url else None
    return ResilientRedis(client, config=config, tier=memory, breaker=breaker)


def async_resilient_redis(
    settings: Settings | None = None,
    *,
    config: RedisStoreConfig | None = None,
    tier: MemoryTier | TierConfig | None = None,
    breaker: CircuitBreaker | None = None,
    **client_options: Any,
) -> AsyncResilientRedis:
    """The asyncio store for ``settings``; same arguments as :func:`resilient_redis`."""
    settings, config, memory, options = _from_settings(settings, config, tier, client_options)
    client = async_redis_client(settings.redis_url, **options) if settings.redis_url else None
    return AsyncResilientRedis(client, config=config, tier=memory, breaker=breaker)
