"""The sans-I/O core of the tiered limiter: which tier decides, the fallback, the background.

:class:`TierCore` never touches the network: the shells (:mod:`._tiered`) make the Redis calls
it asks for and report each outcome to it. See :mod:`fender.ratelimit._tiered` for how a
decision goes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import socket
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Final

from fender._clock import Clock, monotonic
from fender.observability import _metrics as metrics
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._memory import MemoryLimiter
from fender.ratelimit._policy import Decision, RateLimitPolicy
from fender.ratelimit._tiers import (
    BREAKER_NAME,
    HEARTBEAT_KEY,
    HEARTBEAT_LUA,
    STABLE_HEARTBEATS,
    UNAVAILABLE,
    Items,
    Tier,
    local_policy,
)
from fender.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    Permit,
    StateTransition,
)
from fender.stores._commands import Op
from fender.stores._serving import ServingCheck

__all__ = ["TierCore"]

logger = logging.getLogger("fender.ratelimit")

_ADMITTING: Final = frozenset(
    {BreakerState.CLOSED, BreakerState.DISABLED, BreakerState.METRICS_ONLY}
)
_DEGRADED_LOCAL: Final = {"local": Tier.MEMORY, "open": Tier.NONE, "closed": Tier.NONE}


@dataclass(slots=True)
class _Background:
    """One background Redis call the core asked for: a heartbeat, as a probe when ``permit``."""

    permit: Permit | None
    probe: bool


class TierCore:
    """The sans-I/O half of the tiered limiter: tier choice, fallback decisions, bookkeeping.

    It never touches the network; the shells report each Redis call's outcome to it.

    Args:
        config: the rate-limit configuration.
        redis: whether a Redis tier exists at all.
        cluster: Redis is a cluster: the recovery probe asks every primary before the
            heartbeat (which reaches the shard of one key only).
        clock: monotonic seconds for the breaker, the schedule and the memory tier.
        registry: where to create the ``ratelimit`` breaker (so that health and metrics see
            it); None makes a private one.
    """

    def __init__(
        self,
        config: RateLimitConfig,
        *,
        redis: bool,
        cluster: bool = False,
        clock: Clock = monotonic,
        registry: BreakerRegistry | None = None,
    ) -> None:
        """Build the core; the serving tier starts as Redis when there is one."""
        self.config = config
        self.redis = redis
        self.serving_check = ServingCheck(cluster=cluster)
        self._clock = clock
        self.memory = MemoryLimiter(
            algorithm=config.algorithm, max_keys=config.max_keys, clock=clock
        )
        breaker_config = BreakerConfig(
            failure_threshold=config.trip_after,
            failure_rate_threshold=None,
            slow_call_rate_threshold=None,
            recovery_timeout=config.recovery_timeout,
            permitted_calls_in_half_open=1,
            success_threshold=2,
            half_open_slot_timeout=max(1.0, 10 * config.timeout),
        )
        self.breaker = (
            CircuitBreaker(BREAKER_NAME, breaker_config, clock=clock)
            if registry is None
            else registry.get_or_create(BREAKER_NAME, breaker_config)
        )
        self.instance_id = ""
        self.on_reject: Callable[[], None] | None = None
        """Called at each rejection (the monitor counts them per second)."""
        self._counted: int | None = None
        self._local: dict[int, tuple[RateLimitPolicy, RateLimitPolicy]] = {}
        self._next_heartbeat = 0.0
        # Since when Redis serves after an outage, until the local counts are dropped.
        self._redis_since: float | None = None
        self._backend = metrics.gauge(
            "rate_limit_backend",
            "Worker processes whose rate limits are decided by each tier (1 per process).",
            ("backend",),
            multiprocess_mode="livesum",
        )
        decisions = metrics.counter(
            "rate_limit_decisions",
            "Rate-limit decisions by policy item and outcome (allowed, rejected).",
            ("policy", "decision"),
        )
        # counted on every request: buffered (see metrics.Buffered)
        self._decisions = metrics.LabelGuard(metrics.Buffered(decisions), max_series=1000)
        self._errors = metrics.counter(
            "rate_limit_store_errors", "Redis rate-limit calls that failed or timed out."
        )
        # The breaker may be shared (one per registry) and already open: follow its state.
        admitting = self.breaker.state in _ADMITTING
        self.serving = Tier.REDIS if redis and admitting else Tier.MEMORY
        self._publish(self.serving)
        self._unsubscribe: Callable[[], None] | None = None
        self._follow_breaker()

    def _follow_breaker(self) -> None:
        # Weakly: the breaker is shared by the process; a limiter of an app that was dropped
        # without a shutdown (WSGI, a test's app) must not stay alive as its listener.
        method = weakref.WeakMethod(self._on_transition)

        def listener(event: StateTransition) -> None:
            bound = method()
            if bound is not None:
                bound(event)

        unsubscribe = self.breaker.add_transition_listener(listener)
        self._unsubscribe = unsubscribe
        weakref.finalize(self, unsubscribe)  # gone without close(): leave the breaker's list

    def close(self) -> None:
        """Stop following the breaker (shared by every limiter of its registry); idempotent."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def reopen(self) -> None:
        """Serve again after :meth:`close`, with the counts of the earlier run forgotten.

        For an app whose lifespan runs again in the same process (a test client opened twice).
        """
        self.memory.clear()
        self._local.clear()
        if self._unsubscribe is None:
            admitting = self.breaker.state in _ADMITTING
            self.serving = Tier.REDIS if self.redis and admitting else Tier.MEMORY
            self._publish(self.serving)
            self._follow_breaker()

    # -- the request path ------------------------------------------------------------------------

    def redis_permit(self) -> Permit | None:
        """A permit to ask Redis for this request, or None: the fallback decides."""
        if self.redis and self.breaker.state in _ADMITTING:
            return self.breaker.try_acquire()
        return None

    def redis_answered(self, decision: Decision, permit: Permit) -> Decision:
        """Redis decided; count it."""
        self.breaker.on_success(0.0, permit)
        return self.count(decision)

    def redis_failed(self, exc: Exception, permit: Permit, items: Items, cost: int) -> Decision:
        """Redis failed this request: record it, maybe switch, and let the fallback decide."""
        self._errors.inc()
        self.breaker.on_error(exc, 0.0, permit)
        if self.serving is Tier.REDIS:
            logger.debug("rate_limit_store_error", extra={"error": repr(exc)})
        return self.fallback(items, cost)

    def fallback(self, items: Items, cost: int) -> Decision:
        """Decide without Redis: memory (shared limits or local shares), or open or closed."""
        if not self.redis:
            if len(items) == 1:  # the common case: one key, the cheaper path
                key, policy = items[0]
                return self.count(self.memory.hit(key, policy, cost))
            return self.count(self.memory.decide(items, cost))
        # Each policy's own mode, else the configuration's: any closed one rejects, the local
        # ones are limited in memory, the open ones admit.
        default = self.config.fallback
        modes = [policy.fallback or default for _, policy in items]
        if "closed" not in modes:
            local = [
                (key, self._local_policy(policy))
                for (key, policy), mode in zip(items, modes, strict=True)
                if mode == "local"
            ]
            if local:
                return self.count(self.memory.decide(local, cost))
        index = modes.index("closed") if "closed" in modes else 0
        _, policy = items[index]
        allowed = modes[index] != "closed"
        return self.count(
            Decision(
                allowed,
                policy.limits[0].count,
                policy.limits[0].period,
                0,
                0.0,
                0.0 if allowed else max(1.0, self.config.recovery_timeout),
                policy.item_names[0],
                "",
                UNAVAILABLE,
            )
        )

    def count(self, decision: Decision) -> Decision:
        """Count ``decision`` in ``rate_limit_decisions_total``; return it."""
        if decision.allowed:
            self._decisions.child(decision.policy, "allowed").inc()
            return decision
        self._decisions.child(decision.policy, "rejected").inc()
        on_reject = self.on_reject
        if on_reject is not None:
            on_reject()
        return decision

    def _local_policy(self, policy: RateLimitPolicy) -> RateLimitPolicy:
        entry = self._local.get(id(policy))
        if entry is not None and entry[0] is policy:
            return entry[1]
        local = local_policy(policy, self.instances, self.config.slack)
        self._local[id(policy)] = (policy, local)
        return local

    @property
    def instances(self) -> int:
        """N of the local share: ``instances`` if configured, else the last heartbeat count."""
        if self.config.instances is not None:
            return self.config.instances
        return self._counted or 1

    @property
    def counted(self) -> int | None:
        """Live instances the last heartbeat counted (None before the first one)."""
        return self._counted

    # -- the background: heartbeat and recovery probe --------------------------------------------

    def start(self) -> None:
        """Name this instance (after a fork, so that each worker process has its own id)."""
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._next_heartbeat = 0.0

    @property
    def heartbeat_key(self) -> str:
        """The Redis key of the instance set."""
        return f"{self.config.key_prefix}:{HEARTBEAT_KEY}"

    @property
    def heartbeat_args(self) -> tuple[int, str, str, int]:
        """``numkeys, key, instance id, ttl_ms`` for :data:`HEARTBEAT_LUA`."""
        ttl_ms = math.ceil(self.config.heartbeat_interval * 3 * 1000)
        return 1, self.heartbeat_key, self.instance_id, ttl_ms

    def background_due(self) -> _Background | None:
        """The Redis call the background should make now, if any.

        Also drops the local counts once Redis has served long enough after an outage (see
        :data:`STABLE_HEARTBEATS`).
        """
        if not self.redis:
            return None
        since = self._redis_since
        if since is not None and self._clock() - since >= self._stable_after:
            self._redis_since = None
            self.memory.clear()  # stale by the next outage; free the memory now
        state = self.breaker.state
        if state not in _ADMITTING:
            # Only the background probes: a request never waits on a Redis that just failed.
            permit = self.breaker.try_acquire() if state is not BreakerState.FORCED_OPEN else None
            return None if permit is None else _Background(permit, probe=True)
        if self._clock() >= self._next_heartbeat:
            self._next_heartbeat = self._clock() + self.config.heartbeat_interval
            return _Background(self.breaker.try_acquire(), probe=False)
        return None

    @property
    def _stable_after(self) -> float:
        return STABLE_HEARTBEATS * self.config.heartbeat_interval

    def background_flow(self) -> Generator[Op, Any, None]:
        """The background's Redis calls now, if any are due: the shells run each :data:`Op`.

        A heartbeat, or as the recovery probe: on a cluster, :attr:`serving_check` first (every
        primary ``cluster_state:ok``), then the heartbeat.
        """
        call = self.background_due()
        if call is None:
            return
        try:
            if call.probe and self.serving_check.cluster:
                self.serving_check.verify((yield self.serving_check.command))
            reply = yield ("eval", (HEARTBEAT_LUA, *self.heartbeat_args), {})
        except Exception as exc:
            self.background_failed(call, exc)
        else:
            self.background_done(call, reply)

    def background_done(self, call: _Background, reply: object) -> None:
        """A background call answered ``reply`` (the live instance count)."""
        with contextlib.suppress(TypeError, ValueError):
            count = int(reply)  # type: ignore[call-overload]
            if count >= 1 and count != self._counted:
                self._counted = count
                self._local = {}  # the shares depend on N
        if call.permit is not None:
            self.breaker.on_success(0.0, call.permit)
        if call.probe and self.breaker.state in _ADMITTING:
            self._next_heartbeat = self._clock() + self.config.heartbeat_interval

    def background_failed(self, call: _Background, exc: Exception) -> None:
        """A background call failed."""
        self._errors.inc()
        if call.permit is not None:
            self.breaker.on_error(exc, 0.0, call.permit)

    def background_delay(self) -> float:
        """Seconds until the background should look again.

        Never more than ``probe_interval``: a switch made by a request must be followed by
        probes soon, and a wake-up that finds nothing due costs a comparison.
        """
        interval = self.config.probe_interval
        if self.breaker.state not in _ADMITTING:
            return interval
        return max(0.0, min(self._next_heartbeat - self._clock(), interval))

    # -- switches --------------------------------------------------------------------------------

    def _on_transition(self, event: StateTransition) -> None:
        tier = Tier.REDIS if event.to_state in _ADMITTING else _DEGRADED_LOCAL[self.config.fallback]
        if tier is self.serving:
            return
        previous, self.serving = self.serving, tier
        self._publish(tier)
        # The local counts stay until Redis has served a while (background_due drops them):
        # after a switch back that does not last, the share already spent stays spent.
        self._redis_since = self._clock() if tier is Tier.REDIS else None
        extra = {
            "from_backend": previous.value,
            "to_backend": tier.value,
            "fallback": self.config.fallback,
            "instances": self.instances,
        }
        if tier is Tier.REDIS:
            logger.info("rate_limit_backend_recovered", extra=extra)
        else:
            logger.warning("rate_limit_backend_degraded", extra=extra)

    def _publish(self, tier: Tier) -> None:
        for each in Tier:
            self._backend.labels(each.value).set(1 if each is tier else 0)
