"""The memory guard's decisions (pure): collect garbage, warn, or recycle the worker.

A worker's share of the container is the memory limit divided by the number of workers, so
that workers which each stay under their share stay under the limit together. Measured
against it, the resident size (RSS) of the worker crosses two thresholds:

* ``collect`` (75%): run ``gc.collect()`` and warn, once on the way up, then at most once a
  ``collect_interval`` while it stays above (a full collection costs milliseconds per
  hundred MiB of objects, paid by whichever request is running);
* ``critical`` (85%): recycle: the worker finishes its requests and exits, and the server
  starts a fresh one (uWSGI's reload-on-rss). Decided once: a recycling worker is not told
  again.

Going back under ``collect`` ends the episode (an info event), so the next crossing warns
again. The shell (:mod:`fender.runtime._guard`) samples RSS, acts, logs and counts.

Example:
    >>> from fender._clock import ManualClock
    >>> guard = MemoryGuard(share_bytes=100, clock=ManualClock())
    >>> guard.observe(50), guard.observe(80), guard.observe(90)
    (<Action.NONE: 'none'>, <Action.COLLECT: 'collect'>, <Action.RECYCLE: 'recycle'>)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fender._clock import Clock
from fender.errors import ConfigurationError

__all__ = ["Action", "MemoryGuard", "MemoryThresholds", "Pressure"]


class Pressure(enum.Enum):
    """Where a worker's RSS stands against its share."""

    OK = "ok"
    HIGH = "high"
    CRITICAL = "critical"


class Action(enum.Enum):
    """What the shell does after one sample."""

    NONE = "none"
    COLLECT = "collect"
    RECYCLE = "recycle"


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryThresholds:
    """Shares of a worker's memory at which it collects garbage and recycles.

    Args:
        collect: share above which the worker collects garbage and warns (default 0.75).
        critical: share above which the worker recycles (default 0.85).
        collect_interval: least seconds between two collections while above ``collect``.
    """

    collect: float = 0.75
    critical: float = 0.85
    collect_interval: float = 30.0

    def __post_init__(self) -> None:
        """Reject thresholds out of order, naming the field."""
        if not 0 < self.collect < 1:
            raise ConfigurationError("FENDER_MEMORY_COLLECT_PERCENT", self.collect, "in (0, 1)")
        if not self.collect < self.critical <= 1:
            raise ConfigurationError(
                "FENDER_MEMORY_CRITICAL_PERCENT",
                self.critical,
                f"above the collect threshold ({self.collect:.0%}) and at most 100%",
            )
        if not self.collect_interval >= 0:
            raise ConfigurationError("collect_interval", self.collect_interval, ">= 0 seconds")


class MemoryGuard:
    """One worker's memory state, fed one RSS sample at a time."""

    def __init__(
        self,
        *,
        share_bytes: float,
        clock: Clock,
        thresholds: MemoryThresholds | None = None,
    ) -> None:
        """Judge samples against ``share_bytes`` (the worker's share of the limit)."""
        if not share_bytes > 0:
            raise ConfigurationError("share_bytes", share_bytes, "> 0")
        self.share_bytes = share_bytes
        self.thresholds = thresholds or MemoryThresholds()
        self._clock = clock
        self.pressure = Pressure.OK
        self.recycling = False
        self._last_collect: float | None = None

    def ratio(self, rss: float) -> float:
        """``rss`` as a share of the worker's memory."""
        return rss / self.share_bytes

    def classify(self, rss: float) -> Pressure:
        """The pressure ``rss`` means, without changing any state."""
        ratio = self.ratio(rss)
        if ratio >= self.thresholds.critical:
            return Pressure.CRITICAL
        if ratio >= self.thresholds.collect:
            return Pressure.HIGH
        return Pressure.OK

    def observe(self, rss: float) -> Action:
        """Take one sample; say what to do. ``pressure`` is the new state."""
        pressure = self.classify(rss)
        self.pressure = pressure
        if pressure is Pressure.OK:
            self._last_collect = None
            return Action.NONE
        if pressure is Pressure.CRITICAL:
            if self.recycling:
                return Action.NONE
            self.recycling = True
            return Action.RECYCLE
        now = self._clock()
        last = self._last_collect
        if last is None or now - last >= self.thresholds.collect_interval:
            self._last_collect = now
            return Action.COLLECT
        return Action.NONE
