"""The limiter's way back to Redis, sans-I/O: what the probe asks, what the local counts keep.

The core is driven by hand (a manual clock, the background's commands answered by the test):
* on a cluster the recovery probe asks every primary before the heartbeat, which reaches the
  shard of one key only (a live shard must not close the breaker over a lost one);
* the local counts survive a switch back to Redis that does not last (a flapping Redis must
  not hand every client a fresh local share at each switch), and are dropped once Redis has
  served for STABLE_HEARTBEATS heartbeat intervals.
"""

from __future__ import annotations

import math

import redis
from redis import exceptions as redis_errors

from fender._clock import ManualClock
from fender._flow import drive
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._policy import parse_policy
from fender.ratelimit._tiercore import TierCore
from fender.ratelimit._tiers import STABLE_HEARTBEATS, Tier
from fender.resilience import BreakerState

POLICY = parse_policy("10/hour", name="ip")  # no refill within a test
SLACK = 1.5
CAP = math.ceil(10 * SLACK)  # the local share of one instance
OK = {"a:1": {"cluster_state": "ok"}, "b:2": {"cluster_state": "ok"}}
CLUSTERDOWN = {"a:1": {"cluster_state": "fail"}, "b:2": {"cluster_state": "fail"}}
HEALTHY = {"execute_command": OK, "eval": 1}
JITTER = 1.2  # the breaker spreads each recovery timeout by up to 10 %


def make_core(*, cluster: bool = False) -> tuple[TierCore, ManualClock]:
    clock = ManualClock()
    config = RateLimitConfig(redis_url="redis://127.0.0.1:1/0", instances=1, slack=SLACK)
    core = TierCore(config, redis=True, cluster=cluster, clock=clock)
    core.start()
    return core, clock


def background(core: TierCore, replies) -> list[str]:
    """One background step, each command answered from ``replies`` (by method name)."""
    sent: list[str] = []

    def execute(op):
        sent.append(op[0])
        reply = replies[op[0]]
        if isinstance(reply, BaseException):
            raise reply
        return reply

    drive(core.background_flow(), execute)
    return sent


def redis_fails(core: TierCore, key: str) -> bool:
    """A request on Redis fails (the fallback decides it); return whether it was admitted."""
    permit = core.redis_permit()
    assert permit is not None
    down = redis.ConnectionError("down")
    return core.redis_failed(down, permit, [(key, POLICY)], 1).allowed


def on_memory(core: TierCore, key: str, count: int) -> list[bool]:
    return [core.fallback([(key, POLICY)], 1).allowed for _ in range(count)]


def recover(core: TierCore, clock: ManualClock) -> None:
    """Two successful probes (success_threshold 2): the breaker closes."""
    for wait in (core.config.recovery_timeout * JITTER, core.config.probe_interval):
        clock.advance(wait)
        background(core, HEALTHY)
    assert core.serving is Tier.REDIS


def spend_the_share(core: TierCore, key: str) -> None:
    assert redis_fails(core, key)
    assert core.serving is Tier.MEMORY
    assert on_memory(core, key, CAP) == [True] * (CAP - 1) + [False]


# -- the probe on a cluster ------------------------------------------------------------------------


def test_on_a_cluster_the_probe_asks_every_primary_before_the_heartbeat():
    core, clock = make_core(cluster=True)
    assert background(core, HEALTHY) == ["eval"]  # a heartbeat while Redis serves: one EVAL
    redis_fails(core, "k")
    for reply in (CLUSTERDOWN, redis_errors.ConnectionError("a primary is gone")):
        clock.advance(core.config.recovery_timeout * JITTER)
        # the heartbeat's shard would answer: it is not asked
        assert background(core, {**HEALTHY, "execute_command": reply}) == ["execute_command"]
        assert core.breaker.state is BreakerState.OPEN
    clock.advance(core.config.recovery_timeout * JITTER)
    assert background(core, HEALTHY) == ["execute_command", "eval"]
    clock.advance(core.config.probe_interval)
    assert background(core, HEALTHY) == ["execute_command", "eval"]
    assert core.serving is Tier.REDIS


def test_on_a_server_the_heartbeat_is_the_probe():
    core, clock = make_core()
    redis_fails(core, "k")
    clock.advance(core.config.recovery_timeout * JITTER)
    assert background(core, HEALTHY) == ["eval"]
    assert core.breaker.state is BreakerState.HALF_OPEN


# -- the local counts across a recovery ------------------------------------------------------------


def test_a_switch_back_that_does_not_last_keeps_the_spent_share_spent():
    core, clock = make_core()
    spend_the_share(core, "k")
    recover(core, clock)
    assert not redis_fails(core, "k")  # the same client, the next outage: still limited
    assert on_memory(core, "k", 3) == [False] * 3
    assert on_memory(core, "another", 1) == [True]


def test_the_local_counts_are_dropped_once_redis_served_long_enough():
    core, clock = make_core()
    spend_the_share(core, "k")
    recover(core, clock)
    stable = STABLE_HEARTBEATS * core.config.heartbeat_interval
    clock.advance(stable - 0.01)
    background(core, HEALTHY)
    assert len(core.memory) == 1  # not yet
    clock.advance(0.01)
    background(core, HEALTHY)
    assert len(core.memory) == 0
    assert redis_fails(core, "k")  # a later, separate outage: a fresh share


def test_a_new_outage_restarts_the_wait():
    core, clock = make_core()
    spend_the_share(core, "k")
    recover(core, clock)
    stable = STABLE_HEARTBEATS * core.config.heartbeat_interval
    clock.advance(stable / 2)
    background(core, HEALTHY)
    redis_fails(core, "other")  # Redis fails again before it served long enough
    recover(core, clock)
    clock.advance(stable / 2 + core.config.heartbeat_interval)
    background(core, HEALTHY)  # long enough since the first recovery, not since the second
    assert not redis_fails(core, "k")


def test_a_limiter_built_while_the_shared_breaker_is_open_serves_from_memory():
    from fender.resilience import BreakerRegistry

    registry = BreakerRegistry()
    config = RateLimitConfig(redis_url="redis://127.0.0.1:1/0", instances=1, slack=SLACK)
    first = TierCore(config, redis=True, clock=ManualClock(), registry=registry)
    first.breaker.force_open()
    second = TierCore(config, redis=True, clock=ManualClock(), registry=registry)
    assert second.breaker is first.breaker
    assert second.serving is Tier.MEMORY  # what it decides with, and what its gauge says
    first.breaker.reset()
    assert second.serving is Tier.REDIS


def test_a_closed_limiter_stops_following_the_shared_breaker():
    from fender.resilience import BreakerRegistry

    registry = BreakerRegistry()
    config = RateLimitConfig(redis_url="redis://127.0.0.1:1/0", instances=1, slack=SLACK)
    core = TierCore(config, redis=True, clock=ManualClock(), registry=registry)
    core.close()
    core.close()  # idempotent
    core.breaker.force_open()
    assert core.serving is Tier.REDIS  # no longer listening: nothing holds on to it
