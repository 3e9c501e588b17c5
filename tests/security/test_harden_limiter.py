"""A flood of distinct keys never resets a live rate-limit state.

The adversarial pass sent ~101k distinct keys in 10 s: the in-memory limiter evicted the least
recently used states, live ones included, and a client's exhausted /login bucket (and every
other client's) started afresh. Here the same flood, on the memory limiter and on the tiered
limiter's memory tier (what decides while Redis is down), with a manual clock.
"""

from __future__ import annotations

import pytest

from fender._clock import ManualClock
from fender.ratelimit import MemoryLimiter, parse_policy
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._memory import SWEEP_INTERVAL
from fender.ratelimit._policy import Algorithm
from fender.ratelimit._tiercore import TierCore

LOGIN = parse_policy("5/minute", name="/login")
ANY = parse_policy("100/minute", name="default")
ALGORITHMS = [pytest.param(a, id=a.value) for a in Algorithm]


def exhaust(limiter: MemoryLimiter, key: str, times: int = 5) -> None:
    assert all(limiter.hit(key, LOGIN).allowed for _ in range(times))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_flood_of_distinct_keys_does_not_reset_a_login_bucket(algorithm):
    limiter = MemoryLimiter(algorithm=algorithm, clock=ManualClock())  # 100,000 keys
    exhaust(limiter, "ip:198.51.100.7:/login")
    exhaust(limiter, "ip:203.0.113.9:/login", 4)  # another client, one attempt left
    for n in range(101_000):
        limiter.hit(f"ip:198.51.100.7:/p/{n}", ANY)
    assert len(limiter) <= 100_000
    assert not limiter.hit("ip:198.51.100.7:/login", LOGIN).allowed
    victim = limiter.hit("ip:203.0.113.9:/login", LOGIN)
    assert victim.allowed
    assert victim.remaining == 0
    assert not limiter.hit("ip:203.0.113.9:/login", LOGIN).allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_new_keys_share_one_overflow_allowance_while_every_state_is_live(algorithm):
    limiter = MemoryLimiter(algorithm=algorithm, max_keys=10, clock=ManualClock())
    for n in range(10):
        limiter.hit(f"client-{n}", LOGIN)
    newcomers = [limiter.hit(f"new-{n}", LOGIN).allowed for n in range(8)]
    assert newcomers == [True] * 5 + [False] * 3  # one 5/minute allowance for all of them
    assert len(limiter) == 10
    assert limiter.hit("client-0", LOGIN).remaining == 3  # its own state, untouched


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_expired_states_free_room_for_new_keys_again(algorithm):
    clock = ManualClock()
    limiter = MemoryLimiter(algorithm=algorithm, max_keys=10, clock=clock)
    for n in range(10):
        limiter.hit(f"client-{n}", LOGIN)
    exhaust(limiter, "new-0")  # the overflow allowance, used up
    assert not limiter.hit("new-1", LOGIN).allowed
    clock.advance(121)  # every state has expired: each is as good as none
    assert limiter.hit("new-1", LOGIN).remaining == 4  # a state of its own
    assert len(limiter) == 10


def test_a_live_state_at_the_head_does_not_hide_expired_ones_behind_it():
    clock = ManualClock()
    limiter = MemoryLimiter(max_keys=3, clock=clock)
    daily = parse_policy("1/day", name="daily")
    limiter.hit("slow", daily)  # least recently used, live for a day
    limiter.hit("a", LOGIN)
    limiter.hit("b", LOGIN)
    clock.advance(13)  # a and b have expired; slow has not
    assert limiter.hit("c", LOGIN).remaining == 4  # the sweep found room
    assert not limiter.hit("slow", daily).allowed  # the day-long state is still there


def test_a_full_table_is_swept_at_most_once_per_interval():
    clock = ManualClock()
    limiter = MemoryLimiter(max_keys=3, clock=clock)
    daily = parse_policy("1/day", name="daily")
    limiter.hit("slow", daily)
    limiter.hit("a", daily)
    limiter.hit("b", LOGIN)  # expires after 12 s
    clock.advance(11.9)
    limiter.hit("x", LOGIN)
    assert limiter.ttl("x:g60") is None  # in the overflow state: a sweep found nothing
    clock.advance(0.2)  # b has expired, but the last sweep was 0.2 s ago
    limiter.hit("y", LOGIN)
    assert limiter.ttl("y:g60") is None  # overflow still: no second sweep yet
    clock.advance(SWEEP_INTERVAL)
    limiter.hit("z", LOGIN)
    assert limiter.ttl("z:g60") is not None  # swept: b's slot is z's own
    assert limiter.ttl("b:g60") is None
    assert len(limiter) == 3


def test_a_decision_over_several_limits_keeps_live_states_too():
    limiter = MemoryLimiter(max_keys=4, clock=ManualClock())
    both = [("ip:a:/login", LOGIN), ("user:alice:/login", LOGIN)]
    for _ in range(5):
        assert limiter.decide(both).allowed
    for n in range(10):
        limiter.decide([(f"ip:{n}:/x", ANY), (f"user:{n}:/x", ANY)])
    assert len(limiter) == 4
    assert not limiter.decide(both).allowed


def test_the_memory_tier_keeps_live_states_while_redis_is_down():
    clock = ManualClock()
    config = RateLimitConfig(redis_url="redis://127.0.0.1:1/0", instances=1, max_keys=1000)
    core = TierCore(config, redis=True, clock=clock)
    try:
        login = [("ip:198.51.100.7:/login", LOGIN)]
        # the local share of 5/minute on one instance, slack 1.5: 8
        assert sum(core.fallback(login, 1).allowed for _ in range(8)) == 8
        assert not core.fallback(login, 1).allowed
        for n in range(2000):
            core.fallback([(f"ip:198.51.100.{n}:/p", ANY)], 1)
        assert len(core.memory) <= 1000
        assert not core.fallback(login, 1).allowed
    finally:
        core.close()
