"""Clocks: the monotonic clock the library runs on and a manual clock for tests.

Every time-based decision in fender (breaker timeouts, rate-limit arithmetic, health-check
caching) takes a :class:`Clock` so that tests can drive time by hand instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "MonotonicClock", "monotonic"]


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the time in seconds, monotonically non-decreasing."""

    def __call__(self) -> float:
        """Return the current time in seconds."""
        ...


class MonotonicClock:
    """The process's monotonic clock (``time.monotonic``); immune to wall-clock jumps."""

    __slots__ = ()

    def __call__(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    def __repr__(self) -> str:
        return "MonotonicClock()"


monotonic: Clock = MonotonicClock()
"""The shared default clock."""


class ManualClock:
    """A clock that moves only when told to; thread-safe.

    Example:
        >>> clock = ManualClock()
        >>> clock.advance(1.5)
        1001.5
        >>> clock()
        1001.5
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float = 1000.0) -> None:
        """Start at ``start`` seconds (not zero, so that "never" and "now" differ)."""
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current manual time."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back (advance by {seconds!r})")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now``, which must not be earlier than the current time."""
        with self._lock:
            if now < self._now:
                raise ValueError(f"a monotonic clock cannot go back ({now!r} < {self._now!r})")
            self._now = float(now)

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"
