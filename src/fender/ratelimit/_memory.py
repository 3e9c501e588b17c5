"""The in-process rate limiter: the pure arithmetic over a bounded, thread-safe store.

Its decision method is synchronous and never blocks on I/O (the lock is held for a few
microseconds of arithmetic), so an async caller calls it directly: there is no async twin.

The store holds at most ``max_keys`` states and never forgets a live one. A state whose
expiry has passed (a GCRA TAT in the past, a sliding window whose estimate is zero) is the
same as no state, so only those are dropped to make room: the least recently used first
(cheap, and usually enough), else a sweep of the whole table, at most once per
:data:`SWEEP_INTERVAL` (it costs about 10 ms per 100,000 keys). When every state is live (a
flood of distinct keys, each still counting), a key that has no state yet is counted in an
*overflow* state shared by every such key of the same limit, until a slot frees up: the new
keys share one allowance, and no key already counted is ever handed a fresh one. Memory stays
bounded by ``max_keys`` plus one overflow state per limit the app declares.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

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
from fender.ratelimit._policy import Algorithm, Decision, Limit, RateLimitPolicy

__all__ = ["SWEEP_INTERVAL", "MemoryLimiter"]

_US = 1_000_000
SWEEP_INTERVAL: Final = 1.0
"""Seconds between two sweeps of a full table for expired states (see the module)."""
_SWEEP_US: Final = int(SWEEP_INTERVAL * _US)


class MemoryLimiter:
    """Rate limits kept in this process: at most ``max_keys`` limit states.

    Args:
        algorithm: GCRA (default) or the sliding-window counter.
        max_keys: the most limit states kept. Only expired states make room; while every
            one is live, new keys share an overflow state per limit (see the module), so
            size this above the number of clients active per period.
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
        "_next_sweep",
        "_now_ns",
        "_overflow",
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
        # storage key -> (state, expiry in microseconds), least recently used first
        self._store: OrderedDict[str, tuple[State, int]] = OrderedDict()
        # (policy name, limit) -> (state, expiry): the keys the full table has no room for
        self._overflow: dict[tuple[str, Limit], tuple[State, int]] = {}
        self._next_sweep = 0
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
            if entry is not None:
                store.move_to_end(cell)  # see decide()
                state = entry[0] if entry[1] > now else self._initial
            elif len(store) < self._max_keys or self._make_room(now, 1):
                state = self._initial
            else:
                return self._overflowing(cell, name, limit, now, cost)
            decision, new, ttl = decide_one(cell, name, limit, state, now, cost, self._algorithm)
            if ttl > 0:
                store[cell] = (new, now + ttl)
        finally:
            lock.release()
        return decision

    def _overflowing(self, cell: str, name: str, limit: Limit, now: int, cost: int) -> Decision:
        """Decide a new key of ``limit`` in the overflow state (the table is full of live ones)."""
        slot = (name, limit)
        entry = self._overflow.get(slot)
        state = entry[0] if entry is not None and entry[1] > now else self._initial
        decision, new, ttl = decide_one(cell, name, limit, state, now, cost, self._algorithm)
        if ttl > 0:
            self._overflow[slot] = (new, now + ttl)
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
        overflow = self._overflow
        with self._lock:
            states: list[State] = []
            # where each cell's state lives: its key in the table, or its overflow slot
            homes: list[str | tuple[str, Limit]] = []
            new = 0
            for key, name, limit in cells:
                entry = store.get(key)
                if entry is not None:
                    # Reading counts as use: the least recently used are looked at first
                    # when room is needed.
                    store.move_to_end(key)
                    states.append(entry[0] if entry[1] > now else self._initial)
                    homes.append(key)
                elif len(store) + new < self._max_keys or self._make_room(now, new + 1):
                    new += 1
                    states.append(self._initial)
                    homes.append(key)
                else:
                    slot = (name, limit)
                    spill = overflow.get(slot)
                    live = spill is not None and spill[1] > now
                    states.append(spill[0] if spill is not None and live else self._initial)
                    homes.append(slot)
            decision, writes = evaluate(cells, states, now, cost, self._algorithm)
            if writes is not None:
                for home, (state, ttl) in zip(homes, writes, strict=True):
                    if ttl <= 0:
                        continue
                    if isinstance(home, str):
                        store[home] = (state, now + ttl)
                    else:
                        overflow[home] = (state, now + ttl)
        return decision

    def _make_room(self, now: int, needed: int) -> bool:
        """Drop expired states until ``needed`` new ones fit; False when all are live.

        The least recently used first; then, at most once per :data:`SWEEP_INTERVAL`, every
        expired state in the table. A live state is never dropped.
        """
        store = self._store
        room = self._max_keys - needed
        while len(store) > room:
            oldest = next(iter(store))
            if store[oldest][1] > now:
                break
            del store[oldest]
        if len(store) <= room:
            return True
        if now < self._next_sweep:
            return False
        self._next_sweep = now + _SWEEP_US
        for key in [key for key, (_state, expiry) in store.items() if expiry <= now]:
            del store[key]
        return len(store) <= room

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
            self._overflow.clear()
            self._next_sweep = 0

    def __len__(self) -> int:
        """The number of limit states held (expired ones included until dropped)."""
        return len(self._store)
