"""The in-process rate limiter: the pure arithmetic over a bounded, thread-safe LRU store.

Its decision method is synchronous and never blocks on I/O (the lock is held for a few
microseconds of arithmetic), so an async caller calls it directly: there is no async twin.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from fender._clock import Clock, monotonic
from fender.errors import ConfigurationError
from fender.ratelimit._gcra import (
    State,
    cells_for,
    check_cost,
    decide_one,
    evaluate,
    initial_state,
)
from fender.ratelimit._policy import Algorithm, Decision, RateLimitPolicy

__all__ = ["MemoryLimiter"]

_US = 1_000_000


class MemoryLimiter:
    """Rate limits kept in this process: bounded LRU of ``max_keys`` limit states.

    Args:
        algorithm: GCRA (default) or the sliding-window counter.
        max_keys: the most limit states kept; the least recently used go first. An evicted
            key starts afresh, so size this above the number of clients active per period.
        clock: seconds, monotonic (injected for tests).

    Example:
        >>> from fender.ratelimit._policy import parse_policy
        >>> limiter = MemoryLimiter()
        >>> policy = parse_policy("2/second")
        >>> [limiter.hit("ip:203.0.113.9", policy).allowed for _ in range(3)]
        [True, True, False]
    """

    __slots__ = (
        "_algorithm",
        "_clock",
        "_initial",
        "_lock",
        "_max_keys",
        "_now_ns",
        "_store",
    )

    def __init__(
        self,
        *,
        algorithm: Algorithm | str = Algorithm.GCRA,
        max_keys: int = 100_000,
        clock: Clock = monotonic,
    ) -> None:
        """Create an empty limiter."""
        try:
            self._algorithm = Algorithm(algorithm)
        except ValueError:
            raise ConfigurationError(
                "algorithm", algorithm, " or ".join(repr(a.value) for a in Algorithm)
            ) from None
        if not isinstance(max_keys, int) or isinstance(max_keys, bool) or max_keys < 1:
            raise ConfigurationError("max_keys", max_keys, "an integer >= 1")
        self._max_keys = max_keys
        self._clock = clock
        # Nanoseconds, so that the default clock is time.monotonic_ns itself: no Python-level
        # call per request. An injected clock in seconds keeps its microsecond rounding.
        self._now_ns: Callable[[], int] = (
            time.monotonic_ns if clock is monotonic else lambda: round(clock() * _US) * 1000
        )
        self._initial = initial_state(self._algorithm)
        # storage key -> (state, expiry in microseconds)
        self._store: OrderedDict[str, tuple[State, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def algorithm(self) -> Algorithm:
        """The arithmetic this limiter runs."""
        return self._algorithm

    def hit(self, key: str, policy: RateLimitPolicy, cost: int = 1) -> Decision:
        """Count ``cost`` requests under ``key`` against ``policy``; see :meth:`decide`."""
        cells = policy.cells[self._algorithm]
        if len(cells) != 1:
            return self.decide(((key, policy),), cost)
        # The common case, one limit, without the per-cell lists of decide().
        if cost != 1:
            check_cost(cost)
        suffix, name, limit = cells[0]
        cell = key + suffix
        now = self._now_ns() // 1000
        store = self._store
        lock = self._lock
        # acquire() and release(), not `with`: on CPython 3.11 that halves the lock's cost.
        lock.acquire()
        try:
            entry = store.get(cell)
            if entry is None:
                state = self._initial
            else:
                store.move_to_end(cell)  # see decide()
                state = entry[0] if entry[1] > now else self._initial
            decision, new, ttl = decide_one(cell, name, limit, state, now, cost, self._algorithm)
            if ttl > 0:
                store[cell] = (new, now + ttl)
                if entry is None and len(store) > self._max_keys:
                    self._evict()
        finally:
            lock.release()
        return decision

    def decide(self, items: Sequence[tuple[str, RateLimitPolicy]], cost: int = 1) -> Decision:
        """Count one request against every ``(key, policy)`` pair: all admit it, or none counts.

        Args:
            items: the keys and policies that apply (e.g. per IP, per user, per route).
            cost: requests this call counts; 0 reads the state without counting.

        Returns:
            The decision; a rejected request changes no state.
        """
        if cost != 1:
            check_cost(cost)
        cells = cells_for(items, self._algorithm)
        now = self._now_ns() // 1000
        store = self._store
        with self._lock:
            states: list[State] = []
            for key, _name, _limit in cells:
                entry = store.get(key)
                if entry is None:
                    states.append(self._initial)
                else:
                    # Reading counts as use: a client hammering a full key must not be the
                    # first evicted, or eviction would hand it a fresh burst.
                    store.move_to_end(key)
                    states.append(entry[0] if entry[1] > now else self._initial)
            decision, writes = evaluate(cells, states, now, cost, self._algorithm)
            if writes is not None:
                for (key, _name, _limit), (state, ttl) in zip(cells, writes, strict=True):
                    if ttl > 0:
                        store[key] = (state, now + ttl)
                if len(store) > self._max_keys:
                    self._evict()
        return decision

    def _evict(self) -> None:
        while len(self._store) > self._max_keys:
            self._store.popitem(last=False)

    def ttl(self, key: str) -> float | None:
        """Seconds until the state under storage ``key`` expires; None if it holds none."""
        now = self._now_ns() // 1000
        with self._lock:
            entry = self._store.get(key)
        if entry is None or entry[1] <= now:
            return None
        return (entry[1] - now) / _US

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._store.clear()

    def __len__(self) -> int:
        """The number of limit states held (expired ones included until evicted)."""
        return len(self._store)
