"""The way back from a Redis outage, without I/O: the probe and the settling of the journal.

While the breaker is open, a background prober (see :mod:`fender.stores._prober`) runs
:meth:`Healer.probe_flow` every ``probe_interval``: it asks the breaker for a trial, asks
whether Redis serves, settles the outage journal in Redis by the recovery policy, and reports
the trial. The journal is settled before the last trial closes the breaker, so no user read
reaches Redis while it may still hold a value older than the tier's.
"""

from __future__ import annotations

import logging
import math

from fender._clock import Clock
from fender.resilience import CircuitBreaker
from fender.stores._commands import DELETE_MATCHING, Flow, Op, glob_escape, op
from fender.stores._config import RecoveryPolicy, RedisStoreConfig, outage_errors
from fender.stores._memory import MemoryTier
from fender.stores._metrics import StoreMetrics
from fender.stores._outage import Outage
from fender.stores._serving import ServingCheck

__all__ = ["Healer"]

logger = logging.getLogger("fender.stores")

_PIPELINE_BATCH = 500


class Healer:
    """Probes a store's Redis during an outage and settles its journal once Redis serves.

    Args:
        config: The store's configuration (name, recovery policy).
        breaker: The breaker guarding Redis: the probe is its trial call.
        outage: The store's outage record and journal.
        tier: The in-memory tier (the values written back, the entries dropped once settled).
        serving_check: How to ask whether Redis serves.
        metrics: The store's metrics.
        clock: Monotonic seconds for trial durations.
    """

    __slots__ = ("_breaker", "_clock", "_config", "_metrics", "_outage", "_serving", "_tier")

    def __init__(
        self,
        *,
        config: RedisStoreConfig,
        breaker: CircuitBreaker,
        outage: Outage,
        tier: MemoryTier,
        serving_check: ServingCheck,
        metrics: StoreMetrics,
        clock: Clock,
    ) -> None:
        """Hold the store's parts; see the class docstring."""
        self._config = config
        self._breaker = breaker
        self._outage = outage
        self._tier = tier
        self._serving = serving_check
        self._metrics = metrics
        self._clock = clock

    def probe_flow(self) -> Flow[bool]:
        """One background probe; returns True when there is nothing left to probe for.

        While the breaker is open the probe asks it for a trial (it says no until its recovery
        timeout has passed), asks whether Redis serves (PING; on a cluster, every primary must
        report ``cluster_state:ok``: one live node does not stand for a lost shard), settles
        the outage journal, and reports the trial. Once the breaker admits calls again, the
        probe only settles what is left of the journal.
        """
        outage = self._outage
        if not outage.active:
            yield from self._settle_quietly()
            return not outage.has_work
        breaker = self._breaker
        permit = breaker.try_acquire()
        if permit is None:
            return False
        clock = self._clock
        started = clock()
        check = self._serving
        try:
            check.verify((yield (check.command,)))
            yield from self._settle()
        except Exception as exc:
            breaker.on_error(exc, clock() - started, permit)
            self._metrics.errors.child(self._config.name, type(exc).__name__).inc()
            if not isinstance(exc, outage_errors()):
                logger.warning(
                    "redis probe failed",
                    extra={"store": self._config.name, "error": type(exc).__name__},
                )
            return False
        except BaseException as exc:
            breaker.on_error(exc, clock() - started, permit)
            raise
        breaker.on_success(clock() - started, permit)
        return not outage.has_work

    def _settle_quietly(self) -> Flow[None]:
        try:
            yield from self._settle()
        except Exception as exc:
            # Settled on the next probe; meanwhile reads of those keys stay local.
            self._metrics.errors.child(self._config.name, type(exc).__name__).inc()

    def _settle(self) -> Flow[None]:
        """Settle the outage journal in Redis by the policy, then drop those tier entries."""
        keys, prefixes = self._outage.snapshot()
        if not keys and not prefixes:
            return
        # Prefixes first: a key written after its prefix was deleted must survive both.
        for prefix in prefixes:
            yield (op(DELETE_MATCHING, glob_escape(prefix)),)
        write_back = self._config.on_recovery is RecoveryPolicy.WRITE_BACK
        tier = self._tier
        ops: list[Op] = []
        for key in keys:
            found = tier.peek(key) if write_back else None
            if found is None:
                ops.append(op("delete", key))
            else:
                value, remaining = found
                px = {} if remaining is None else {"px": max(1, math.ceil(remaining * 1000))}
                ops.append(op("set", key, value, **px))
        for start in range(0, len(ops), _PIPELINE_BATCH):
            yield tuple(ops[start : start + _PIPELINE_BATCH])
        self._outage.forget(keys, prefixes, tier.delete)
        self._metrics.tier_changed(tier)
