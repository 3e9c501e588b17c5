"""The breaker's state machine, driven step by step with a manual clock."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from fender._clock import ManualClock
from fender.errors import CallNotPermitted
from fender.resilience import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    SlidingWindowType,
)

COUNT = SlidingWindowType.COUNT_BASED
TIME = SlidingWindowType.TIME_BASED

# Only the rule under test is on; recovery is deterministic (no jitter) unless a test says so.
CONSECUTIVE = BreakerConfig(
    failure_threshold=3,
    failure_rate_threshold=None,
    slow_call_duration_threshold=None,
    recovery_timeout=60.0,
    recovery_jitter=0.0,
    permitted_calls_in_half_open=2,
    success_threshold=2,
)


def make(config: BreakerConfig = CONSECUTIVE, **changes):
    clock = ManualClock()
    config = dataclasses.replace(config, **changes)
    return CircuitBreaker("dep", config, clock=clock, rng=lambda: 0.5), clock


def play(breaker: CircuitBreaker, clock: ManualClock, script: str) -> None:
    """Run a script of steps separated by spaces.

    ok / fail / slow: acquire (must be admitted) and report a success, a failure, a slow success;
    rej: acquire must be rejected; wait:S advances the clock; <state>: the state must be that.
    """
    for step in script.split():
        op, _, arg = step.partition(":")
        if op in {"ok", "fail", "slow"}:
            permit = breaker.try_acquire()
            assert permit is not None, f"{step!r} was rejected in {breaker.state}"
            if op == "fail":
                breaker.on_error(ConnectionError("down"), 0.01, permit)
            else:
                breaker.on_success(5.0 if op == "slow" else 0.01, permit)
        elif op == "rej":
            assert breaker.try_acquire() is None, f"admitted in {breaker.state}"
        elif op == "wait":
            clock.advance(float(arg))
        else:
            assert breaker.state == BreakerState(op), f"at {step!r}"


@pytest.mark.parametrize(
    ("changes", "script"),
    [
        pytest.param({}, "fail fail ok fail fail closed fail open rej", id="consecutive-failures"),
        pytest.param(
            {},
            "fail fail fail wait:59.9 rej open wait:0.1 open ok half_open ok closed",
            id="open-then-half-open-lazily-then-closed",
        ),
        pytest.param(
            {},
            "fail fail fail wait:60 ok fail open rej wait:60 ok ok closed",
            id="failed-trial-reopens",
        ),
        pytest.param(
            {"success_threshold": 1},
            "fail fail fail wait:60 ok closed ok ok",
            id="single-success-closes",
        ),
        pytest.param(
            {},
            "fail fail fail wait:60 ok ok closed fail fail closed fail open",
            id="closing-clears-the-count",
        ),
        pytest.param(
            {
                "failure_threshold": None,
                "failure_rate_threshold": 50.0,
                "sliding_window_type": COUNT,
                "sliding_window_size": 4,
                "minimum_number_of_calls": 4,
            },
            "fail ok fail closed ok open",  # 2 of 4 failed: 50% >= 50% (and a success can trip)
            id="count-window-rate",
        ),
        pytest.param(
            {
                "failure_threshold": None,
                "failure_rate_threshold": 50.0,
                "sliding_window_type": COUNT,
                "sliding_window_size": 4,
                "minimum_number_of_calls": 4,
            },
            "fail ok ok ok ok ok fail closed fail open",  # the old failure slid out
            id="count-window-slides",
        ),
        pytest.param(
            {
                "failure_threshold": None,
                "failure_rate_threshold": 50.0,
                "sliding_window_type": COUNT,
                "sliding_window_size": 3,
                "minimum_number_of_calls": 20,
            },
            "fail ok closed fail open",  # minimum capped at the window size
            id="count-window-minimum-capped",
        ),
        pytest.param(
            {
                "failure_threshold": None,
                "failure_rate_threshold": 50.0,
                "sliding_window_type": TIME,
                "sliding_window_size": 10,
                "minimum_number_of_calls": 4,
            },
            "fail fail fail wait:10 ok ok fail closed fail open",  # the first three expired
            id="time-window-expires",
        ),
        pytest.param(
            {
                "failure_threshold": None,
                "failure_rate_threshold": 50.0,
                "sliding_window_type": TIME,
                "sliding_window_size": 10,
                "minimum_number_of_calls": 4,
            },
            "fail wait:5 fail wait:4.5 ok closed fail open",  # 9.5 s later both still count
            id="time-window-keeps-recent",
        ),
        pytest.param(
            {
                "failure_threshold": None,
                "failure_rate_threshold": 50.0,
                "sliding_window_type": TIME,
                "sliding_window_size": 10,
                "minimum_number_of_calls": 4,
            },
            "fail fail wait:5 ok wait:5 ok closed fail closed fail open",  # the first two slid out
            id="time-window-partial-expiry",
        ),
        pytest.param(
            {
                "failure_threshold": None,
                "slow_call_duration_threshold": 1.0,
                "slow_call_rate_threshold": 100.0,
                "sliding_window_type": COUNT,
                "sliding_window_size": 2,
                "minimum_number_of_calls": 2,
            },
            "slow ok slow closed slow open",
            id="slow-call-rate",
        ),
        pytest.param(
            {
                "failure_threshold": None,
                "slow_call_duration_threshold": 1.0,
                "slow_call_rate_threshold": 50.0,
                "sliding_window_type": COUNT,
                "sliding_window_size": 2,
                "minimum_number_of_calls": 2,
            },
            "ok slow open wait:60 ok slow open",  # a slow trial is a failed trial
            id="slow-trial-reopens",
        ),
        pytest.param({}, "fail fail fail wait:60 ok ok closed", id="two-trials-in-flight"),
    ],
)
def test_script(changes, script):
    breaker, clock = make(**changes)
    play(breaker, clock, script)


def test_half_open_admits_only_permitted_trials_at_once():
    breaker, clock = make()
    play(breaker, clock, "fail fail fail wait:60")
    first, second = breaker.try_acquire(), breaker.try_acquire()
    assert first is not None
    assert second is not None
    assert first.trial
    assert second.trial
    assert breaker.try_acquire() is None
    breaker.on_success(0.01, first)
    third = breaker.try_acquire()  # a reported trial frees its slot
    assert third is not None
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.on_success(0.01, second)
    assert breaker.state is BreakerState.CLOSED


def test_lost_trial_slot_frees_itself_after_the_slot_timeout():
    breaker, clock = make(permitted_calls_in_half_open=1, half_open_slot_timeout=10.0)
    play(breaker, clock, "fail fail fail wait:60")
    lost = breaker.try_acquire()
    assert lost is not None
    clock.advance(9.0)
    assert breaker.try_acquire() is None
    assert breaker.snapshot().retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    replacement = breaker.try_acquire()
    assert replacement is not None
    breaker.on_success(0.01, replacement)
    breaker.on_success(0.01, lost)  # reported late: still a real outcome of this state
    assert breaker.state is BreakerState.CLOSED


def test_outcome_of_a_call_admitted_before_a_transition_is_not_counted():
    breaker, clock = make()
    early = breaker.try_acquire()
    play(breaker, clock, "fail fail fail wait:60")
    trial = breaker.try_acquire()
    breaker.on_error(ConnectionError(), 0.01, early)  # from the CLOSED generation: stale
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.on_success(0.01, trial)
    assert breaker.snapshot().half_open_in_flight == 0


def test_reports_without_a_permit_count_against_the_current_state():
    breaker, clock = make()
    for _ in range(3):
        breaker.on_error(ConnectionError(), 0.01)
    assert breaker.state is BreakerState.OPEN
    clock.advance(60)
    assert breaker.try_acquire() is not None
    breaker.on_success()
    assert breaker.snapshot().half_open_in_flight == 0  # the oldest slot was freed
    assert breaker.try_acquire() is not None
    breaker.on_success()
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("exc", "counted"),
    [
        pytest.param(ConnectionError(), True, id="recorded"),
        pytest.param(ValueError(), False, id="ignored-explicitly"),
        pytest.param(UnicodeError(), False, id="ignored-subclass"),
        pytest.param(KeyError("k"), False, id="not-in-record-exceptions"),
        pytest.param(KeyboardInterrupt(), False, id="base-exception"),
    ],
)
def test_record_and_ignore_exceptions(exc, counted):
    breaker, _ = make(
        failure_threshold=1,
        record_exceptions=(OSError, ValueError),
        ignore_exceptions=(ValueError,),
    )
    assert breaker.on_error(exc, 0.01, breaker.try_acquire()) is counted
    expected = BreakerState.OPEN if counted else BreakerState.CLOSED
    assert breaker.state is expected


def test_ignored_exception_frees_a_trial_slot_without_deciding():
    breaker, clock = make(permitted_calls_in_half_open=1, ignore_exceptions=(ValueError,))
    play(breaker, clock, "fail fail fail wait:60")
    breaker.on_error(ValueError(), 0.01, breaker.try_acquire())
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_acquire() is not None


def test_failure_predicate_on_results():
    breaker, _ = make(failure_threshold=2, failure_predicate=lambda result: result is None)
    breaker.on_result("value", 0.01, breaker.try_acquire())
    breaker.on_result(None, 0.01, breaker.try_acquire())
    assert breaker.state is BreakerState.CLOSED
    breaker.on_result(None, 0.01, breaker.try_acquire())
    assert breaker.state is BreakerState.OPEN


def test_recovery_timeout_grows_is_capped_and_resets_on_close():
    breaker, clock = make(
        recovery_timeout=10.0,
        recovery_timeout_multiplier=2.0,
        max_recovery_timeout=35.0,
        permitted_calls_in_half_open=1,
        success_threshold=1,
    )
    play(breaker, clock, "fail fail fail")
    seen = []
    for _ in range(4):
        seen.append(breaker.snapshot().retry_after)
        clock.advance(seen[-1])
        play(breaker, clock, "fail open")
    assert seen == [10.0, 20.0, 35.0, 35.0]
    clock.advance(35.0)
    play(breaker, clock, "ok closed fail fail fail")
    assert breaker.snapshot().retry_after == 10.0


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (0.5, 1.0), (0.999999, 1.2)])
def test_jitter_stays_within_its_fraction(draw, factor):
    clock = ManualClock()
    config = dataclasses.replace(CONSECUTIVE, recovery_timeout=50.0, recovery_jitter=0.2)
    breaker = CircuitBreaker("dep", config, clock=clock, rng=lambda: draw)
    play(breaker, clock, "fail fail fail")
    assert breaker.snapshot().retry_after == pytest.approx(50.0 * factor, abs=1e-4)


def test_jitter_spreads_workers():
    clock = ManualClock()
    draws = iter([0.1, 0.9])
    config = dataclasses.replace(CONSECUTIVE, recovery_jitter=0.5)
    breakers = [CircuitBreaker(f"w{i}", config, clock=clock, rng=lambda: next(draws)) for i in "12"]
    for breaker in breakers:
        play(breaker, clock, "fail fail fail")
    first, second = (breaker.snapshot().retry_after for breaker in breakers)
    assert first == pytest.approx(60 * 0.6)
    assert second == pytest.approx(60 * 1.4)


def test_forced_open_rejects_until_reset():
    breaker, clock = make()
    breaker.force_open()
    play(breaker, clock, "forced_open rej wait:1000 rej")
    with pytest.raises(CallNotPermitted) as caught, breaker:
        pass
    assert caught.value.retry_after == 60.0
    breaker.reset()
    play(breaker, clock, "closed ok")


def test_disabled_admits_everything_and_records_nothing():
    breaker, clock = make()
    breaker.disable()
    play(breaker, clock, "fail fail fail fail disabled ok")
    assert breaker.snapshot().consecutive_failures == 0
    breaker.transition_to_closed()
    play(breaker, clock, "closed fail fail fail open")


def test_metrics_only_records_but_never_trips():
    breaker, clock = make(
        failure_rate_threshold=50.0,
        minimum_number_of_calls=2,
        sliding_window_type=COUNT,
        sliding_window_size=4,
    )
    breaker.metrics_only()
    play(breaker, clock, "fail fail fail fail fail metrics_only")
    snapshot = breaker.snapshot()
    assert (snapshot.calls, snapshot.failed_calls, snapshot.failure_rate) == (4, 4, 100.0)
    assert snapshot.consecutive_failures == 5


def test_reset_forgets_growth_and_transition_to_closed_keeps_it():
    breaker, clock = make(
        recovery_timeout=10.0, recovery_timeout_multiplier=3.0, permitted_calls_in_half_open=1
    )
    play(breaker, clock, "fail fail fail wait:10 fail")
    assert breaker.snapshot().recovery_timeout == 30.0
    breaker.transition_to_closed()
    assert breaker.snapshot().recovery_timeout == 30.0
    breaker.reset()
    assert breaker.snapshot().recovery_timeout == 10.0
    breaker.reset()  # already closed: clears counts, no transition
    assert breaker.state is BreakerState.CLOSED


def test_snapshot_reports_rates_and_retry_after():
    breaker, clock = make(
        failure_threshold=None,
        failure_rate_threshold=60.0,
        sliding_window_type=COUNT,
        sliding_window_size=10,
        minimum_number_of_calls=4,
        slow_call_duration_threshold=1.0,
        slow_call_rate_threshold=100.0,
    )
    play(breaker, clock, "ok fail slow")
    snapshot = breaker.snapshot()
    assert snapshot.failure_rate is None  # fewer than the minimum number of calls
    play(breaker, clock, "ok")
    snapshot = breaker.snapshot()
    assert (snapshot.calls, snapshot.failed_calls, snapshot.slow_calls) == (4, 1, 1)
    assert snapshot.failure_rate == 25.0
    assert snapshot.slow_call_rate == 25.0
    assert snapshot.retry_after == 0.0
    assert snapshot.as_dict()["state"] == "closed"
    play(breaker, clock, "fail fail fail fail open wait:20")
    assert breaker.snapshot().retry_after == pytest.approx(40.0)
    assert breaker.retry_after() == pytest.approx(40.0)


def test_state_gauge_values():
    assert [state.gauge for state in BreakerState] == [0, 2, 1, 2, 0, 0]


def test_transitions_are_logged_once_each_with_the_breaker_name(caplog):
    caplog.set_level(logging.DEBUG, logger="fender.resilience")
    breaker, clock = make()
    play(breaker, clock, "fail fail fail wait:60 fail wait:60 ok ok")
    logged = [(record.getMessage(), record.levelno) for record in caplog.records]
    assert logged == [
        ("circuit breaker opened", logging.WARNING),
        ("circuit breaker half-open", logging.DEBUG),
        ("circuit breaker trial failed, open again", logging.DEBUG),
        ("circuit breaker half-open", logging.DEBUG),
        ("circuit breaker reset to closed", logging.INFO),
    ]
    assert {record.breaker for record in caplog.records} == {"dep"}
    breaker.force_open()
    assert caplog.records[-1].getMessage() == "circuit breaker forced open"


def test_transition_and_call_listeners_with_a_raising_listener(caplog):
    breaker, clock = make()
    transitions, calls = [], []

    def broken(event):
        raise RuntimeError("listener bug")

    breaker.add_transition_listener(broken)
    breaker.add_transition_listener(transitions.append)
    breaker.add_call_listener(broken)
    remove = breaker.add_call_listener(calls.append)
    play(breaker, clock, "ok fail fail fail rej wait:60 ok ok")
    assert [(t.from_state, t.to_state) for t in transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert transitions[0].retry_after == 60.0
    assert [c.outcome for c in calls] == [
        "success",
        "failure",
        "failure",
        "failure",
        "rejected",
        "success",
        "success",
    ]
    assert all(c.name == "dep" for c in calls)
    failures = [r for r in caplog.records if r.getMessage() == "circuit breaker listener failed"]
    assert len(failures) == 3 + 7
    remove()
    play(breaker, clock, "ok")
    assert len(calls) == 7


def test_growth_cap_defaults_to_ten_times_the_timeout():
    breaker, clock = make(
        recovery_timeout=1.0, recovery_timeout_multiplier=4.0, permitted_calls_in_half_open=1
    )
    play(breaker, clock, "fail fail fail")
    for _ in range(4):
        clock.advance(breaker.snapshot().retry_after)
        play(breaker, clock, "fail open")
    assert breaker.snapshot().recovery_timeout == 10.0
