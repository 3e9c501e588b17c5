"""The resilient store's decisions, without I/O: one class both shells drive.

Every call goes through a :class:`~fender.resilience.CircuitBreaker`. While it admits calls,
reads and writes go to Redis and fill a bounded :class:`~fender.stores._memory.MemoryTier`.
Once it opens, calls are answered by the tier without touching the network: reads return the
tier's copy (stale copies marked so), writes land in the tier and in the outage journal (see
:mod:`fender.stores._outage`), a miss returns the caller's default. The way back is
:mod:`fender.stores._healing`'s.

Each operation is a flow (see :mod:`fender.stores._commands`): a generator that yields the
Redis commands it needs and receives their replies. :class:`~fender.redis.ResilientRedis`
and :class:`~fender.redis.AsyncResilientRedis` only run those commands, with and without
``await``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, TypeVar

from fender._clock import Clock, monotonic
from fender._status import Status
from fender.errors import ConfigurationError
from fender.health import CheckResult
from fender.resilience import BreakerRegistry, CircuitBreaker, default_registry
from fender.stores._commands import DELETE_MATCHING, Command, Flow, glob_escape, op
from fender.stores._config import REDIS_BREAKER, RedisStoreConfig, outage_errors
from fender.stores._healing import Healer
from fender.stores._memory import MemoryTier
from fender.stores._metrics import StoreMetrics
from fender.stores._outage import ADMITTING, Outage
from fender.stores._result import Result, Source
from fender.stores._serving import ServingCheck

__all__ = ["StoreCore"]

T = TypeVar("T")


class _Down:
    """The marker a guarded command returns when Redis did not answer."""

    __slots__ = ()


_DOWN: Final = _Down()


class StoreCore:
    """Every decision of the resilient store, without I/O: the sync and async shells drive it.

    Each public ``*_flow`` method is a generator: it yields a
    :data:`~fender.stores._commands.Command` to run against Redis and receives the reply (or
    has the exception thrown in); its return value is the operation's result. During an
    outage a flow returns at once, yielding nothing.

    Args:
        has_redis: False for the embedded, memory-only store.
        cluster: Redis is a cluster: health and recovery ask every primary, not one node
            (see :class:`~fender.stores._serving.ServingCheck`).
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
        self._metrics = StoreMetrics(config.name)
        self._outage = Outage(
            config=config,
            tier=self.tier,
            metrics=self._metrics,
            clock=clock,
            active=has_redis and breaker.state not in ADMITTING,
        )
        self._healer = Healer(
            config=config, breaker=breaker, outage=self._outage, tier=self.tier,
            serving_check=self.serving_check, metrics=self._metrics, clock=clock,
        )  # fmt: skip
        self._unsubscribe = (
            breaker.add_transition_listener(self._outage.on_transition) if has_redis else None
        )
        self._metrics.serving(
            Source.MEMORY if self._outage.active or not has_redis else Source.REDIS
        )
        self._metrics.tier_changed(self.tier)

    # -- state -----------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but the tier serves (the breaker does not admit calls).

        Read from the breaker itself, not from the outage record its listener keeps: the
        breaker's other listeners (the log events, the metrics) run just after its state
        changes, and a reader must never see the two disagree.
        """
        return self.has_redis and self.breaker.state not in ADMITTING

    @property
    def needs_probe(self) -> bool:
        """True while a background probe has work: Redis to watch or outage writes to settle."""
        return self.has_redis and self._outage.has_work

    @property
    def pending(self) -> int:
        """Keys and prefixes written during an outage and not yet settled in Redis."""
        return self._outage.pending

    def close(self) -> None:
        """Stop listening to the breaker (which may outlive this store in its registry)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

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
        except outage_errors() as exc:
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

    # -- reads -----------------------------------------------------------------------------------

    def _read_local(self, key: str, default: T) -> Result[bytes | T]:
        # With Redis configured, a local read is a read Redis did not answer.
        missed = self.has_redis
        entry = self.tier.lookup(key) if self.config.fallback or not missed else None
        if missed:
            self._outage.reads += 1
        if entry is None:
            if missed:
                self._metrics.read_miss.inc()
            return Result(default, Source.DEFAULT, degraded=missed)
        if missed:
            (self._metrics.read_stale if entry.stale else self._metrics.read_hit).inc()
        return Result(entry.value, Source.MEMORY, entry.stale, entry.stale_age, degraded=missed)

    def get_flow(self, key: str, default: T) -> Flow[Result[bytes | T]]:
        """Read ``key``: from Redis (filling the tier with its TTL) or from the tier."""
        if not self.has_redis or self._outage.local_only(key):
            return self._read_local(key, default)
        reply = yield from self._guarded((op("get", key), op("pttl", key)))
        if reply is _DOWN:
            return self._read_local(key, default)
        value, pttl = reply
        if value is None:
            self.tier.delete(key)
            self._metrics.tier_changed(self.tier)
            return Result(default, Source.DEFAULT)
        if self.config.fallback:
            # PTTL is -1 for no expiry, -2 if the key expired between the two commands.
            if pttl == -2:  # noqa: PLR2004  (Redis's "no such key")
                self.tier.delete(key)
            else:
                self.tier.set(key, value, pttl / 1000 if pttl > 0 else None)
            self._metrics.tier_changed(self.tier)
        return Result(value, Source.REDIS)

    # -- writes ----------------------------------------------------------------------------------

    def _write_local(self, kind: str, key: str) -> Source:
        self._outage.writes += 1
        self._metrics.writes[kind].inc()
        self._outage.journal_key(key)
        self._metrics.tier_changed(self.tier)
        return Source.MEMORY

    def set_flow(self, key: str, value: bytes, ttl: float | None) -> Flow[Source]:
        """Write ``key``: to Redis (and the tier), or during an outage to the tier alone."""
        tier = self.tier
        if self.has_redis and not self._outage.active:
            px = {} if ttl is None else {"px": max(1, math.ceil(ttl * 1000))}
            reply = yield from self._guarded((op("set", key, value, **px),))
            if reply is not _DOWN:
                if self.config.fallback:
                    tier.set(key, value, ttl)
                    self._metrics.tier_changed(tier)
                self._outage.settle_key(key)
                return Source.REDIS
        if not self.has_redis:
            tier.set(key, value, ttl)
            self._metrics.tier_changed(tier)
            return Source.MEMORY
        if not self.config.fallback:
            return Source.DROPPED
        tier.set(key, value, ttl)
        return self._write_local("set", key)

    def delete_flow(self, keys: tuple[str, ...]) -> Flow[int]:
        """Delete ``keys``; return how many existed (in Redis, or in the tier when it serves)."""
        tier = self.tier
        if self.has_redis and not self._outage.active and keys:
            reply = yield from self._guarded((op("delete", *keys),))
            if reply is not _DOWN:
                for key in keys:
                    tier.delete(key)
                    self._outage.settle_key(key)
                self._metrics.tier_changed(tier)
                return int(reply)
        deleted = sum(tier.delete(key) for key in keys)
        if self.has_redis and self.config.fallback:
            for key in keys:
                self._write_local("delete", key)
        else:
            self._metrics.tier_changed(tier)
        return deleted

    def delete_prefix_flow(self, prefix: str) -> Flow[int]:
        """Delete every key starting with ``prefix`` (SCAN + UNLINK on Redis, never KEYS)."""
        if not prefix:
            raise ValueError("an empty prefix would delete everything; refusing")
        tier = self.tier
        if self.has_redis and not self._outage.active:
            reply = yield from self._guarded((op(DELETE_MATCHING, glob_escape(prefix)),))
            if reply is not _DOWN:
                tier.delete_prefix(prefix)
                self._metrics.tier_changed(tier)
                self._outage.settle_prefix(prefix)
                return int(reply)
        deleted = tier.delete_prefix(prefix)
        if self.has_redis and self.config.fallback:
            self._outage.writes += 1
            self._metrics.writes["delete"].inc()
            self._outage.journal_prefix(prefix)
        self._metrics.tier_changed(tier)
        return deleted

    def incr_flow(self, key: str, amount: int, ttl: float | None) -> Flow[int]:
        """Add ``amount`` to the counter at ``key``; ``ttl`` is set when the key is created.

        During an outage the tier counts alone (this worker's increments only); with the
        fallback off the result is 0.
        """
        tier = self.tier
        if self.has_redis and not self._outage.active:
            reply = yield from self._guarded((op("incrby", key, amount), op("pttl", key)))
            if reply is not _DOWN:
                value, pttl = int(reply[0]), int(reply[1])
                if ttl is not None and pttl == -1:
                    ms = max(1, math.ceil(ttl * 1000))
                    # Best effort: if this fails the counter lives on without a TTL until the
                    # next increment that finds none sets it.
                    if (yield from self._guarded((op("pexpire", key, ms),))) is not _DOWN:
                        pttl = ms
                if self.config.fallback:
                    tier.set(key, str(value).encode(), pttl / 1000 if pttl > 0 else None)
                    self._metrics.tier_changed(tier)
                self._outage.settle_key(key)
                return value
        if self.has_redis and not self.config.fallback:
            return 0
        value = tier.incr(key, amount, ttl)
        if not self.has_redis:
            self._metrics.tier_changed(tier)
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
        :class:`~fender.stores._serving.ServingCheck`).
        """
        if not self.has_redis or self._outage.active:
            return False
        return (yield from self._ask_serving()) is not _DOWN

    def health_flow(self) -> Flow[CheckResult]:
        """The health check's verdict: pass, warn while the tier serves, fail without fallback."""
        if not self.has_redis:
            return CheckResult(Status.PASS, "embedded memory tier", details={"backend": "memory"})
        clock = self._clock
        started = clock()
        if not self._outage.active and (yield from self._ask_serving()) is not _DOWN:
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
        """One background probe (see :meth:`~fender.stores._healing.Healer.probe_flow`).

        Returns:
            True when there is nothing left to probe for.
        """
        return self._healer.probe_flow()
