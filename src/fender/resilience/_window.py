"""Sliding windows over call outcomes: the last N calls, or the last N seconds.

Both windows keep running totals, so recording a call and reading the rates are O(1). The
time-based window uses one bucket per second, as resilience4j does, instead of a list of calls:
its memory is bounded by the window length, not by the traffic. Neither window locks; the breaker
calls them inside its own short critical section.

Both have an ``expired`` flag, set when outcomes leave the window by age alone (a newer outcome
evicting an older one does not set it) and cleared by the reader that checks the rates: a
success recorded while it is clear cannot have raised a rate since that check.
"""

from __future__ import annotations

import math

__all__ = ["CountWindow", "SlidingWindow", "TimeWindow"]

_FAILED = 1
_SLOW = 2


class CountWindow:
    """The outcomes of the last ``size`` calls, in a ring buffer of one byte per call."""

    __slots__ = ("_pos", "_ring", "_size", "calls", "expired", "failures", "slow")

    def __init__(self, size: int) -> None:
        """Keep the last ``size`` outcomes."""
        self._size = size
        self._ring = bytearray(size)
        self._pos = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0
        self.expired = False  # never set: nothing leaves a count window by age

    def record(self, now: float, failed: bool, slow: bool) -> None:  # noqa: ARG002, FBT001  (same signature as TimeWindow; positional on the hot path)
        """Add one outcome, evicting the oldest once the window is full."""
        pos = self._pos
        ring = self._ring
        # Most outcomes are plain successes (a zero byte): they skip the arithmetic.
        if self.calls == self._size:
            old = ring[pos]
            if old:
                self.failures -= old & _FAILED
                self.slow -= old >> 1
        else:
            self.calls += 1
        if failed or slow:
            ring[pos] = failed | (slow << 1)
            self.failures += failed
            self.slow += slow
        else:
            ring[pos] = 0
        pos += 1
        self._pos = 0 if pos == self._size else pos

    def refresh(self, now: float) -> None:
        """Nothing expires with time in a count-based window."""

    def reset(self) -> None:
        """Forget every outcome."""
        self._ring = bytearray(self._size)
        self._pos = self.calls = self.failures = self.slow = 0


class TimeWindow:
    """The outcomes of the last ``seconds`` seconds, in one bucket per whole second.

    The newest bucket is the current, partial second, so the window covers between
    ``seconds - 1`` and ``seconds`` seconds of history, like resilience4j's. Each bucket is a
    ``[calls, failures, slow]`` list; recording touches only the current one until the clock
    passes ``_next_roll``, so the per-call cost has no division and no ``int()``.
    """

    __slots__ = (
        "_buckets",
        "_current",
        "_head",
        "_next_roll",
        "_size",
        "calls",
        "expired",
        "failures",
        "slow",
    )

    def __init__(self, seconds: int) -> None:
        """Keep the outcomes of the last ``seconds`` seconds."""
        self._size = seconds
        self._buckets = [[0, 0, 0] for _ in range(seconds)]
        self._head = -(1 << 62)  # the epoch second of the newest bucket; "long ago" at first
        self._next_roll = -math.inf  # the first record rolls
        self._current = self._buckets[0]
        self.calls = 0
        self.failures = 0
        self.slow = 0
        self.expired = False

    def record(self, now: float, failed: bool, slow: bool) -> None:  # noqa: FBT001  (positional on the hot path)
        """Add one outcome at time ``now`` to its second's bucket."""
        if now >= self._next_roll:
            self._roll(now)
        # A caller that read the clock just before another thread rolled the window lands in
        # the newest bucket: off by under a second, instead of lost.
        current = self._current
        current[0] += 1
        self.calls += 1
        if failed:
            current[1] += 1
            self.failures += 1
        if slow:
            current[2] += 1
            self.slow += 1

    def refresh(self, now: float) -> None:
        """Drop the buckets that have slid out of the window by time ``now``."""
        if now >= self._next_roll:
            self._roll(now)

    def _roll(self, now: float) -> None:
        second = math.floor(now)
        size = self._size
        buckets = self._buckets
        if second - self._head >= size:
            self.reset()
        else:
            for moved in range(self._head + 1, second + 1):
                bucket = buckets[moved % size]
                self.calls -= bucket[0]
                self.failures -= bucket[1]
                self.slow -= bucket[2]
                bucket[0] = bucket[1] = bucket[2] = 0
        self._head = second
        self._next_roll = second + 1.0
        self._current = buckets[second % size]
        self.expired = True  # whether or not the dropped seconds held calls: one check more

    def reset(self) -> None:
        """Forget every outcome."""
        for bucket in self._buckets:
            bucket[0] = bucket[1] = bucket[2] = 0
        self.calls = self.failures = self.slow = 0


SlidingWindow = CountWindow | TimeWindow
"""Either window; both have ``record``, ``refresh``, ``reset``, the three totals and ``expired``."""
