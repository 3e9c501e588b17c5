"""A Redis outage as the resilient store records it: whether one is under way, what it wrote.

The store's flows route on :attr:`Outage.active`, which follows the breaker's transitions (the
outage listens to them): True from the moment the breaker stops admitting calls until it
admits them again. During an outage, writes land in the in-memory tier and in the *journal*:
the keys and prefixes written locally, each with a sequence number, so that settling a key in
Redis after the outage does not forget a newer local write made meanwhile. The journal is
bounded; past ``max_journal`` a write is counted and logged, not journaled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from fender._clock import Clock
from fender.resilience import BreakerState, StateTransition
from fender.stores._config import RedisStoreConfig
from fender.stores._memory import MemoryTier
from fender.stores._metrics import StoreMetrics
from fender.stores._result import Source

__all__ = ["ADMITTING", "Outage"]

logger = logging.getLogger("fender.stores")

ADMITTING: Final = frozenset(
    {BreakerState.CLOSED, BreakerState.DISABLED, BreakerState.METRICS_ONLY}
)
"""The breaker states in which calls reach Redis: in any other, the store is in an outage."""


class Outage:
    """The outage record of one store: its state, its counters and its journal.

    Args:
        config: The store's configuration (name, fallback, recovery policy, journal bound).
        tier: The in-memory tier (its size goes into the log events).
        metrics: The store's metrics.
        clock: Monotonic seconds, for the outage's length.
        active: Whether an outage is under way now (the breaker does not admit calls).
    """

    __slots__ = (
        "_clock",
        "_config",
        "_keys",
        "_lock",
        "_metrics",
        "_prefixes",
        "_seq",
        "_tier",
        "active",
        "overflow",
        "reads",
        "reconciled",
        "started",
        "writes",
    )

    def __init__(
        self,
        *,
        config: RedisStoreConfig,
        tier: MemoryTier,
        metrics: StoreMetrics,
        clock: Clock,
        active: bool,
    ) -> None:
        """Record no outage yet (or one under way, with ``active``); see the class docstring."""
        self._config = config
        self._tier = tier
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, int] = {}
        self._prefixes: dict[str, int] = {}
        self._seq = 0
        self.active = active
        """True from the breaker's leaving the admitting states until it is back in one."""
        self.started = 0.0
        self.reads = 0
        """Reads the tier answered (or missed) during this outage."""
        self.writes = 0
        """Writes the tier took during this outage."""
        self.reconciled = 0
        """Journal entries settled in Redis since this outage began."""
        self.overflow = 0
        """Writes not journaled during this outage: the journal was full."""

    # -- the outage ------------------------------------------------------------------------------

    @property
    def has_work(self) -> bool:
        """True while there is Redis to watch or a journal to settle."""
        return self.active or bool(self._keys) or bool(self._prefixes)

    @property
    def pending(self) -> int:
        """Keys and prefixes written during an outage and not yet settled in Redis."""
        return len(self._keys) + len(self._prefixes)

    def on_transition(self, event: StateTransition) -> None:
        """The breaker's listener: an outage begins or ends (logged, and on the gauges)."""
        active = event.to_state not in ADMITTING
        was = self.active
        self.active = active
        if active and not was:
            self._begin(event.to_state)
        elif was and not active:
            self._end()

    def _begin(self, state: BreakerState) -> None:
        config = self._config
        self.started = self._clock()
        self.reads = self.writes = self.reconciled = self.overflow = 0
        self._metrics.serving(Source.MEMORY if config.fallback else Source.DEFAULT)
        logger.warning(
            "redis fallback engaged",
            extra={
                "store": config.name,
                "breaker_state": state.value,
                "fallback": "memory" if config.fallback else "none",
                "tier_entries": len(self._tier),
            },
        )

    def _end(self) -> None:
        config = self._config
        self._metrics.serving(Source.REDIS)
        logger.info(
            "redis recovered",
            extra={
                "store": config.name,
                "outage_seconds": round(self._clock() - self.started, 3),
                "fallback_reads": self.reads,
                "fallback_writes": self.writes,
                "reconciled": self.reconciled,
                "unreconciled": self.pending,
                "journal_overflow": self.overflow,
                "policy": config.on_recovery.value,
            },
        )

    def local_only(self, key: str) -> bool:
        """True when ``key`` must be answered locally: an outage, or ``key`` not yet settled.

        Between the breaker closing and the prober settling the journal, Redis may still hold
        an older value of a key written locally; the tier's is the newer one.
        """
        if self.active:
            return True
        if self._keys or self._prefixes:
            with self._lock:
                return key in self._keys or any(map(key.startswith, self._prefixes))
        return False

    # -- the journal -----------------------------------------------------------------------------

    def journal_key(self, key: str) -> None:
        """Remember that ``key`` was written locally (unless the journal is full)."""
        limit = self._config.max_journal
        with self._lock:
            if key not in self._keys and len(self._keys) >= limit:
                self.overflow += 1
                if self.overflow == 1:
                    logger.warning(
                        "redis outage journal full",
                        extra={"store": self._config.name, "max_journal": limit},
                    )
                return
            self._seq += 1
            self._keys[key] = self._seq

    def journal_prefix(self, prefix: str) -> None:
        """Remember that the keys under ``prefix`` were deleted locally."""
        with self._lock:
            self._seq += 1
            self._prefixes[prefix] = self._seq

    def settle_key(self, key: str) -> None:
        """A write of ``key`` reached Redis: nothing older of it is left to reconcile."""
        if self._keys:
            with self._lock:
                self._keys.pop(key, None)

    def settle_prefix(self, prefix: str) -> None:
        """The keys under ``prefix`` were deleted in Redis: none of them is left to reconcile."""
        if self._keys:
            with self._lock:
                for key in [k for k in self._keys if k.startswith(prefix)]:
                    del self._keys[key]

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """The journal now: keys and prefixes with their sequence numbers."""
        with self._lock:
            return dict(self._keys), dict(self._prefixes)

    def forget(
        self, keys: dict[str, int], prefixes: dict[str, int], drop: Callable[[str], object]
    ) -> None:
        """Forget the entries of a :meth:`snapshot` settled in Redis; ``drop`` each such key.

        An entry written again since the snapshot (a newer sequence number) is kept. ``drop``
        runs under the journal's lock, so that no local write of the key slips in between.
        """
        with self._lock:
            for prefix, seq in prefixes.items():
                if self._prefixes.get(prefix) == seq:
                    del self._prefixes[prefix]
            for key, seq in keys.items():
                if self._keys.get(key) == seq:
                    del self._keys[key]
                    drop(key)
        self.reconciled += len(keys) + len(prefixes)
