from __future__ import annotations

import asyncio
import threading

import pytest

from fender._clock import ManualClock
from fender.errors import ConfigurationError
from fender.ratelimit import MemoryLimiter, parse_policy


def test_expired_states_make_room_the_least_recently_used_first():
    clock = ManualClock()
    limiter = MemoryLimiter(max_keys=3, clock=clock)
    policy = parse_policy("2/minute")
    for key in "abc":
        limiter.hit(key, policy)
    clock.advance(31)  # one hit of 2/minute is forgotten after 30 s: all three expired
    limiter.hit("a", policy)  # a is now the most recent (and live again)
    limiter.hit("d", policy)
    assert len(limiter) == 3
    assert limiter.ttl("b:g60") is None
    assert limiter.ttl("a:g60") is not None


def test_a_full_table_of_live_states_grants_no_fresh_burst():
    limiter = MemoryLimiter(max_keys=2, clock=ManualClock())
    policy = parse_policy("1/minute")
    assert limiter.hit("attacker", policy).allowed
    limiter.hit("x", policy)
    assert not limiter.hit("attacker", policy).allowed
    assert limiter.hit("y", policy).allowed  # no room: y counts in the overflow state
    assert not limiter.hit("z", policy).allowed  # ... which z shares
    assert not limiter.hit("attacker", policy).allowed
    assert not limiter.hit("x", policy).allowed


def test_default_bound_and_bad_settings():
    with pytest.raises(ConfigurationError, match="max_keys"):
        MemoryLimiter(max_keys=0)
    with pytest.raises(ConfigurationError, match="algorithm"):
        MemoryLimiter(algorithm="leaky")
    assert MemoryLimiter()._max_keys == 100_000


def test_thread_safe_exact_count_under_contention():
    limiter = MemoryLimiter(clock=ManualClock())
    policy = parse_policy("500/hour")
    results: list[bool] = []
    lock = threading.Lock()

    def worker():
        mine = [limiter.hit("shared", policy).allowed for _ in range(200)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 500
    assert len(results) == 1600


def test_async_callers_call_it_directly():
    limiter = MemoryLimiter(clock=ManualClock())
    policy = parse_policy("2/second")

    async def handler():
        return [limiter.hit("k", policy).allowed for _ in range(3)]

    assert asyncio.run(handler()) == [True, True, False]


def test_expired_state_is_a_fresh_key():
    clock = ManualClock()
    limiter = MemoryLimiter(clock=clock, algorithm="sliding")
    policy = parse_policy("1/second")
    assert limiter.hit("k", policy).allowed
    assert not limiter.hit("k", policy).allowed
    clock.advance(limiter.ttl("k:s1"))
    assert limiter.ttl("k:s1") is None
    assert limiter.hit("k", policy).remaining == 0
    limiter.clear()
    assert len(limiter) == 0


def test_a_decision_over_new_keys_keeps_the_bound_and_the_keys_it_just_used():
    clock = ManualClock()
    limiter = MemoryLimiter(max_keys=2, clock=clock)
    policy = parse_policy("5/minute")
    limiter.hit("old", policy)
    clock.advance(13)  # one hit of 5/minute is forgotten after 12 s: old has expired
    limiter.hit("x", policy)
    assert limiter.decide([("x", policy), ("new", policy)]).allowed
    assert len(limiter) == 2
    assert limiter.ttl("old:g60") is None
    assert limiter.hit("x", policy).remaining == 2  # counted twice, updated in place
    assert limiter.hit("new", policy).remaining == 3
