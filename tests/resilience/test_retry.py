"""Retry policies: backoff, deadline, budget, CallNotPermitted, and composition with a breaker."""

from __future__ import annotations

import asyncio

import pytest

from fender._clock import ManualClock
from fender.errors import CallNotPermitted, ConfigurationError
from fender.resilience import (
    RETRY_BACKGROUND,
    RETRY_REQUEST,
    RETRY_STARTUP,
    BreakerConfig,
    CircuitBreaker,
    RetryBudget,
    RetryConfig,
    RetryPolicy,
)


class Flaky:
    """Fails ``failures`` times with ``exc``, then returns ``"ok"``; may take clock time."""

    def __init__(self, failures, exc=ConnectionError, clock=None, takes=0.0):
        self.failures, self.exc, self.clock, self.takes = failures, exc, clock, takes
        self.attempts = 0

    def __call__(self):
        self.attempts += 1
        if self.clock is not None:
            self.clock.advance(self.takes)
        if self.attempts <= self.failures:
            raise self.exc("flaky")
        return "ok"


def make(config=None, *, budget=None, draw=1.0):
    clock = ManualClock()
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock.advance(seconds)

    async def async_sleep(seconds):
        sleep(seconds)

    policy = RetryPolicy(
        config or RetryConfig(),
        budget=budget,
        clock=clock,
        rng=lambda: draw,
        sleep=sleep,
        async_sleep=async_sleep,
    )
    return policy, clock, sleeps


def test_retries_with_full_jitter_exponential_backoff():
    config = RetryConfig(max_attempts=5, initial_backoff=0.1, max_backoff=0.3, deadline=None)
    policy, _, sleeps = make(config, draw=0.5)
    flaky = Flaky(4)
    assert policy.call(flaky) == "ok"
    assert flaky.attempts == 5
    assert sleeps == pytest.approx([0.05, 0.1, 0.15, 0.15])  # half of 0.1, 0.2, 0.3 (capped)


def test_gives_up_after_max_attempts_and_reraises_the_last_error():
    policy, _, _ = make(RetryConfig(max_attempts=3, deadline=None))
    flaky = Flaky(10)
    with pytest.raises(ConnectionError):
        policy.call(flaky)
    assert flaky.attempts == 3


@pytest.mark.parametrize(
    "exc", [pytest.param(ValueError, id="not-retry-on"), pytest.param(KeyError, id="never-retry")]
)
def test_only_transient_errors_are_retried(exc):
    policy, _, _ = make(RetryConfig(retry_on=(ConnectionError, KeyError), never_retry=(KeyError,)))
    flaky = Flaky(1, exc)
    with pytest.raises(exc):
        policy.call(flaky)
    assert flaky.attempts == 1


def test_call_not_permitted_is_never_retried():
    policy, _, _ = make(RetryConfig(retry_on=(Exception,)))
    attempts = []

    def rejected():
        attempts.append(1)
        raise CallNotPermitted("svc", 5.0)

    with pytest.raises(CallNotPermitted):
        policy.call(rejected)
    assert len(attempts) == 1


def test_deadline_counts_backoff_and_attempt_time():
    config = RetryConfig(max_attempts=10, initial_backoff=0.5, max_backoff=10.0, deadline=2.0)
    policy, clock, sleeps = make(config, draw=1.0)
    start = clock()
    with pytest.raises(ConnectionError):
        policy.call(Flaky(10))
    # Attempts at 0, 0.5 and 1.5 s; the next backoff (2 s) would end past the deadline.
    assert sleeps == [0.5, 1.0]
    assert clock() - start == 1.5
    slow = Flaky(10, clock=clock, takes=0.9)
    with pytest.raises(ConnectionError):
        policy.call(slow)
    # 0.9 s attempt + 0.5 s sleep + 0.9 s attempt = 2.3 s: over the deadline, no third attempt.
    assert slow.attempts == 2


def test_budget_limits_retries_to_a_ratio_of_calls_plus_a_floor():
    clock = ManualClock()
    budget = RetryBudget(ratio=0.5, min_per_second=0.1, ttl=10, clock=clock)  # floor: 1 per 10 s
    assert budget.available() == 1.0
    for _ in range(4):
        budget.record_call()
    assert budget.available() == 3.0
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]
    clock.advance(10.0)
    assert budget.available() == 1.0


def test_budget_exhaustion_stops_retrying_across_calls():
    budget = RetryBudget(ratio=0.0, min_per_second=0.2, ttl=10, clock=ManualClock())  # 2 retries
    policy, _, _ = make(RetryConfig(max_attempts=5, deadline=None), budget=budget)
    first, second = Flaky(10), Flaky(10)
    for flaky in (first, second):
        with pytest.raises(ConnectionError):
            policy.call(flaky)
    assert (first.attempts, second.attempts) == (3, 1)


def test_budget_is_not_spent_when_another_rule_stops():
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, ttl=10, clock=ManualClock())
    policy, _, _ = make(RetryConfig(max_attempts=1), budget=budget)
    with pytest.raises(ConnectionError):
        policy.call(Flaky(10))
    assert budget.available() == 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ratio": -1}, "ratio"),
        ({"min_per_second": float("nan")}, "min_per_second"),
        ({"ttl": 0}, "ttl"),
    ],
)
def test_budget_arguments_are_validated(kwargs, field):
    with pytest.raises(ConfigurationError) as caught:
        RetryBudget(**kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", 101),
        ("max_attempts", 2.0),
        ("initial_backoff", 0),
        ("max_backoff", 0.01),
        ("deadline", -1.0),
        ("retry_on", ConnectionError),
        ("never_retry", ("x",)),
    ],
)
def test_invalid_retry_config_names_the_field(field, value):
    with pytest.raises(ConfigurationError) as caught:
        RetryConfig(**{field: value})
    assert caught.value.field == field


def test_presets_have_deadlines():
    for preset in (RETRY_REQUEST, RETRY_BACKGROUND, RETRY_STARTUP):
        assert preset.deadline is not None
        assert preset.max_backoff <= preset.deadline


def test_sync_and_async_share_one_policy():
    policy, _, sleeps = make(RetryConfig(max_attempts=3, deadline=None), draw=0.5)

    @policy
    def fetch():
        return flaky_sync()

    @policy
    async def fetch_async():
        return flaky_async()

    flaky_sync, flaky_async = Flaky(2), Flaky(2)
    assert fetch() == "ok"
    assert asyncio.run(fetch_async()) == "ok"
    assert asyncio.run(policy.call_async(asyncio.sleep, 0, result="direct")) == "direct"
    assert (flaky_sync.attempts, flaky_async.attempts) == (3, 3)
    assert sleeps == [0.05, 0.1, 0.05, 0.1]


def test_retry_inside_the_breaker_counts_one_user_call_once():
    clock = ManualClock()
    breaker = CircuitBreaker("svc", BreakerConfig(failure_threshold=2), clock=clock)
    outcomes = []
    breaker.add_call_listener(lambda event: outcomes.append(event.outcome))
    policy, _, _ = make(RetryConfig(max_attempts=3, deadline=None))
    flaky = Flaky(2)

    @breaker
    @policy
    def fetch():
        return flaky()

    assert fetch() == "ok"
    assert outcomes == ["success"]
    always = Flaky(100)

    @breaker
    @policy
    def fetch_down():
        return always()

    with pytest.raises(ConnectionError):
        fetch_down()
    assert always.attempts == 3
    assert breaker.snapshot().consecutive_failures == 1
    with pytest.raises(ConnectionError):
        fetch_down()
    with pytest.raises(CallNotPermitted):  # open: the retry does not hammer it
        fetch_down()
    assert always.attempts == 6


def test_async_retry_inside_the_breaker():
    breaker = CircuitBreaker("svc", BreakerConfig(failure_threshold=1), clock=ManualClock())
    policy, _, _ = make(RetryConfig(max_attempts=2, deadline=None))
    flaky = Flaky(5)

    @breaker
    @policy
    async def fetch():
        return flaky()

    async def main():
        with pytest.raises(ConnectionError):
            await fetch()
        with pytest.raises(CallNotPermitted):
            await fetch()

    asyncio.run(main())
    assert flaky.attempts == 2
