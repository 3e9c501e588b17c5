"""Tiered rate limiting: Redis first, memory when Redis fails, back on Redis by itself.

One sans-I/O core (:class:`TierCore`) holds every decision about tiers: which tier serves a
request, the circuit breaker (named ``ratelimit``) that switches them, the local share of each
limit while on the fallback, the instance count from the heartbeat, the metrics and the log
events. :class:`TieredLimiter` (sync, a background thread) and :class:`AsyncTieredLimiter`
(asyncio, a background task) only make the Redis calls the core asks for; they differ by an
``await``, and their verbs mean the same (``start``; ``stop`` the background; ``close`` /
``aclose`` to free the client).

How a decision goes:

* Redis configured and the breaker closed: one EVALSHA covering every limit of the request,
  bounded by ``timeout`` (a client of its own with socket timeouts and no retries). In lease
  mode (:mod:`._lease`) that call takes several requests at once while the key is far from
  its limit, and the next requests spend them here without a round trip.
* The call fails (refused, timed out, anything): the breaker opens after ``trip_after``
  failures, and this request and every later one is decided by the fallback at once, without
  waiting on Redis. No exception reaches the caller.
* The fallback: ``local`` decides in memory with ``ceil(limit / N) * slack`` per instance,
  where N is ``instances`` or the number of live instances the heartbeat counted while Redis
  answered; ``open`` admits; ``closed`` rejects with the reason ``rate_limit_unavailable``.
* In the background, a probe tries Redis every ``probe_interval`` once the breaker's
  ``recovery_timeout`` has passed; two successes in a row close it, and traffic is back on
  Redis (about one second after Redis answers again). The probe is the heartbeat; on a
  Redis Cluster it first asks every primary for ``cluster_state:ok``
  (:class:`~fender.stores._serving.ServingCheck`), since the heartbeat reaches one shard only.
* The local counts are kept until Redis has served for three heartbeat intervals in a row:
  a Redis that comes back and fails again (a flapping one) must not hand every client a
  fresh local share at each switch.

Example:
    >>> from fender.ratelimit._config import RateLimitConfig
    >>> limiter = TieredLimiter(RateLimitConfig())  # no REDIS_URL: memory only
    >>> policy = RateLimitConfig().default
    >>> limiter.decide([("fender:rl:{203.0.113.9}:default:/", policy)]).allowed
    True
    >>> limiter.close()

This module holds the shells; the vocabulary is in :mod:`._tiers` and the sans-I/O core in
:mod:`._tiercore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from fender._clock import Clock, monotonic
from fender._flow import adrive, drive
from fender._hooks import Hooks
from fender.observability import _metrics as metrics
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._gcra import check_cost
from fender.ratelimit._lease import LeaseBook, LeaseConfig
from fender.ratelimit._policy import Decision
from fender.ratelimit._redis import (
    AsyncRedisLimiter,
    AsyncScriptClient,
    RedisLimiter,
    ScriptClient,
)
from fender.ratelimit._tiercore import TierCore
from fender.ratelimit._tiers import LEAVE_LUA, Items, Tier
from fender.resilience import BreakerRegistry
from fender.stores._commands import Op

__all__ = ["AsyncTieredLimiter", "TieredLimiter"]

logger = logging.getLogger("fender.ratelimit")


_EXACT = LeaseConfig(mode="exact")


def _decided_here(core: TierCore, leases: LeaseBook, items: Items, cost: int) -> Decision | None:
    """What both shells decide without a Redis call, or None: ask Redis (with a permit).

    Without REDIS_URL the fallback decides (no lease to spend, no permit to ask for); with it, a
    lease held here answers when it has a request left.

    Raises:
        ValueError: ``cost`` is not an integer >= 0 (a programming error).
    """
    if cost.__class__ is not int or cost < 0:  # (check_cost's own test, without its call)
        check_cost(cost)
    if not core.redis:
        return core.fallback(items, cost)
    leased = leases.spend(items, cost)
    return None if leased is None else core.count(leased)


def _round_trips_metric() -> Any:
    return metrics.counter(
        "rate_limit_redis_calls",
        "Redis round trips made for rate-limit decisions (lease mode makes one per lease).",
    )


def _client_options(config: RateLimitConfig) -> dict[str, Any]:
    """Options of the limiter's client, built by :mod:`fender.stores._clients` like every other.

    Its timeouts are the decision's budget, and it runs no health-check PING: a connection that
    went bad fails one decision (the fallback answers it) instead of costing every reconnect a
    round trip. The factory already disables retries and the extra connect handshakes.
    """
    return {"timeout": config.timeout, "health_check_interval": 0}


def _is_cluster(client: object) -> bool:
    if client is None:
        return False
    from fender.stores._clients import is_cluster

    return is_cluster(client)


def _sync_client(config: RateLimitConfig) -> ScriptClient:
    from fender.stores._clients import redis_client

    client: ScriptClient = redis_client(config.redis_url, **_client_options(config))
    return client


def _async_client(config: RateLimitConfig) -> AsyncScriptClient:
    from fender.stores._clients import async_redis_client

    client: AsyncScriptClient = async_redis_client(config.redis_url, **_client_options(config))
    return client


class TieredLimiter:
    """Rate limits in Redis with a memory fallback, for sync callers (WSGI, Flask, threads).

    Args:
        config: the configuration (``RateLimitConfig.from_settings(settings)``).
        client: a sync Redis client to use instead of one built from ``config.redis_url``
            (give it short socket timeouts and no retries).
        clock: monotonic seconds (inject a manual clock in tests).
        redis_clock: for tests only: drive the Redis script's time by hand.
        registry: where the ``ratelimit`` breaker lives; None makes a private one.
        lease: lease or exact mode (:class:`~fender.ratelimit._lease.LeaseConfig`); None is
            exact; an app's runtime passes the one its settings give (lease by default).

    Call :meth:`start` once the process serves (it runs the heartbeat and the recovery probe
    in a daemon thread) and :meth:`close` at shutdown.
    """

    def __init__(
        self,
        config: RateLimitConfig,
        *,
        client: ScriptClient | None = None,
        clock: Clock = monotonic,
        redis_clock: Clock | None = None,
        registry: BreakerRegistry | None = None,
        lease: LeaseConfig | None = None,
    ) -> None:
        """Build the tiers; no I/O happens until the first decision."""
        self._owns_client = client is None and bool(config.redis_url)
        if client is None and config.redis_url:
            client = _sync_client(config)
        self._client = client
        self._redis = (
            None
            if client is None
            else RedisLimiter(client, algorithm=config.algorithm, clock=redis_clock)
        )
        self.core = TierCore(
            config,
            redis=client is not None,
            cluster=_is_cluster(client),
            clock=clock,
            registry=registry,
        )
        self.leases = LeaseBook(
            lease or _EXACT, algorithm=config.algorithm, clock=clock, redis_clock=redis_clock
        )
        self.round_trips = 0
        """Redis calls made for decisions (the background's not counted): tests, bench read it."""
        self._round_trips = _round_trips_metric()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls,
        config: RateLimitConfig,
        registry: BreakerRegistry,
        hooks: Hooks,
        lease: LeaseConfig,
    ) -> TieredLimiter:
        """The limiter of an app, its start and close registered with the app's ``hooks``.

        Never started when rate limiting is off: no thread, no heartbeat to Redis.
        """
        limiter = cls(config, registry=registry, lease=lease)
        if config.enabled:
            hooks.on_startup(limiter.start)
        hooks.on_shutdown(limiter.close)
        return limiter

    @property
    def serving(self) -> Tier:
        """The tier deciding right now."""
        return self.core.serving

    def decide(self, items: Items, cost: int = 1) -> Decision:
        """Count one request against every ``(key, policy)`` pair; never raises on I/O.

        Raises:
            ValueError: ``cost`` is not an integer >= 0 (a programming error).
        """
        core = self.core
        leases = self.leases
        decided = _decided_here(core, leases, items, cost)
        if decided is not None:
            return decided
        permit = core.redis_permit()
        if permit is None or self._redis is None or self._client is None:
            return core.fallback(items, cost)
        flow = leases.flow(self._redis, items, cost, core.instances)
        try:
            decision = drive(flow, self._call)
        except Exception as exc:
            return core.redis_failed(exc, permit, items, cost)
        return core.redis_answered(decision, permit)

    def step(self) -> float:
        """Run one background step now (heartbeat or probe); return the delay to the next."""
        if self._client is not None:
            drive(self.core.background_flow(), self._execute)
        return self.core.background_delay()

    def _execute(self, op: Op) -> Any:
        name, args, kwargs = op
        return getattr(self._client, name)(*args, **kwargs)

    def _call(self, op: Op) -> Any:
        """A decision's Redis call, counted."""
        self.round_trips += 1
        self._round_trips.inc()
        return self._execute(op)

    def start(self) -> None:
        """Start the background thread (heartbeat, recovery probe); idempotent."""
        if self._thread is not None or self._client is None:
            return
        self.core.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fender-ratelimit", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.step()
            except Exception:
                logger.exception("rate_limit_background_failed")
                delay = self.core.config.probe_interval
            self._stop.wait(delay)

    def stop(self) -> None:
        """Stop the background thread and leave the instance set (best effort); idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        client = self._client
        if client is not None and self.core.serving is Tier.REDIS:
            with contextlib.suppress(Exception):
                client.eval(LEAVE_LUA, 1, self.core.heartbeat_key, self.core.instance_id)

    def close(self) -> None:
        """Stop; leave the breaker's listeners; close the Redis client if this limiter made it."""
        self.core.close()
        self.stop()
        close = getattr(self._client, "close", None)
        if close is not None and self._owns_client:
            with contextlib.suppress(Exception):
                close()


class AsyncTieredLimiter:
    """:class:`TieredLimiter` for asyncio callers (ASGI): the same core, awaited I/O.

    Args:
        config: the configuration.
        client: a ``redis.asyncio`` client to use instead of one built from the URL.
        clock: monotonic seconds (inject a manual clock in tests).
        redis_clock: for tests only: drive the Redis script's time by hand.
        registry: where the ``ratelimit`` breaker lives; None makes a private one.
        lease: lease or exact mode (:class:`~fender.ratelimit._lease.LeaseConfig`); None is
            exact; an app's runtime passes the one its settings give (lease by default).

    Await :meth:`start` in the app's startup (it runs the heartbeat and the recovery probe
    in a task) and :meth:`aclose` at shutdown.
    """

    def __init__(
        self,
        config: RateLimitConfig,
        *,
        client: AsyncScriptClient | None = None,
        clock: Clock = monotonic,
        redis_clock: Clock | None = None,
        registry: BreakerRegistry | None = None,
        lease: LeaseConfig | None = None,
    ) -> None:
        """Build the tiers; no I/O happens until the first decision."""
        self._owns_client = client is None and bool(config.redis_url)
        if client is None and config.redis_url:
            client = _async_client(config)
        self._client = client
        self._redis = (
            None
            if client is None
            else AsyncRedisLimiter(client, algorithm=config.algorithm, clock=redis_clock)
        )
        self.core = TierCore(
            config,
            redis=client is not None,
            cluster=_is_cluster(client),
            clock=clock,
            registry=registry,
        )
        self.leases = LeaseBook(
            lease or _EXACT, algorithm=config.algorithm, clock=clock, redis_clock=redis_clock
        )
        self.round_trips = 0
        """Redis calls made for decisions (the background's not counted): tests, bench read it."""
        self._round_trips = _round_trips_metric()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        config: RateLimitConfig,
        registry: BreakerRegistry,
        hooks: Hooks,
        lease: LeaseConfig,
    ) -> AsyncTieredLimiter:
        """The limiter of an app, its start and close registered with the app's ``hooks``.

        Never started when rate limiting is off: no task, no heartbeat to Redis.
        """
        limiter = cls(config, registry=registry, lease=lease)
        if config.enabled:
            hooks.on_startup(limiter.start)
        hooks.on_shutdown(limiter.aclose)
        return limiter

    @property
    def serving(self) -> Tier:
        """The tier deciding right now."""
        return self.core.serving

    async def decide(self, items: Items, cost: int = 1) -> Decision:
        """Count one request against every ``(key, policy)`` pair; never raises on I/O.

        Raises:
            ValueError: ``cost`` is not an integer >= 0 (a programming error).
        """
        core = self.core
        leases = self.leases
        decided = _decided_here(core, leases, items, cost)
        if decided is not None:
            return decided
        permit = core.redis_permit()
        if permit is None or self._redis is None or self._client is None:
            return core.fallback(items, cost)
        flow = leases.flow(self._redis, items, cost, core.instances)
        try:
            decision = await adrive(flow, self._call)
        except Exception as exc:
            return core.redis_failed(exc, permit, items, cost)
        return core.redis_answered(decision, permit)

    async def step(self) -> float:
        """Run one background step now (heartbeat or probe); return the delay to the next."""
        if self._client is not None:
            await adrive(self.core.background_flow(), self._execute)
        return self.core.background_delay()

    async def _execute(self, op: Op) -> Any:
        name, args, kwargs = op
        return await getattr(self._client, name)(*args, **kwargs)

    async def _call(self, op: Op) -> Any:
        """A decision's Redis call, counted."""
        self.round_trips += 1
        self._round_trips.inc()
        return await self._execute(op)

    async def start(self) -> None:
        """Start the background task on the running loop; idempotent."""
        if self._task is not None or self._client is None:
            return
        self.core.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fender-ratelimit")

    async def _run(self) -> None:
        while True:
            try:
                delay = await self.step()
            except Exception:
                logger.exception("rate_limit_background_failed")
                delay = self.core.config.probe_interval
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Stop the background task and leave the instance set (best effort); idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        client = self._client
        if client is not None and self.core.serving is Tier.REDIS:
            with contextlib.suppress(Exception):
                await client.eval(LEAVE_LUA, 1, self.core.heartbeat_key, self.core.instance_id)

    async def aclose(self) -> None:
        """Stop; leave the breaker's listeners; close the Redis client if this limiter made it."""
        self.core.close()
        await self.stop()
        client = self._client
        if self._owns_client and client is not None:
            from fender.stores._clients import aclose_client

            with contextlib.suppress(Exception):
                await aclose_client(client)
