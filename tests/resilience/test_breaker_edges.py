"""The edges of the state machine: exact boundaries, event fields, stale permits, manual states.

Written against the mutants that survived the older tests (tests/resilience/MUTANTS.md).
"""

from __future__ import annotations

import dataclasses

import pytest

from fender._clock import ManualClock
from fender.errors import CallNotPermitted
from fender.resilience import (
    BreakerConfig,
    BreakerState,
    CallEvent,
    CircuitBreaker,
    Outcome,
    SlidingWindowType,
    StateTransition,
)
from fender.resilience._states import MANUAL_STATES, STATES

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
COUNT, TIME = SlidingWindowType.COUNT_BASED, SlidingWindowType.TIME_BASED

# Consecutive failures only: no window, no timing. The defaults otherwise: OPEN for 60 s, two
# trials in flight, two successes to close, a lost trial's slot freed after 10 s.
LEAN = BreakerConfig(
    failure_threshold=3,
    failure_rate_threshold=None,
    slow_call_duration_threshold=None,
    recovery_jitter=0.0,
)
# A failure-rate rule over a time window, with the consecutive rule too.
TIMED = dataclasses.replace(
    LEAN,
    failure_rate_threshold=50.0,
    sliding_window_type=TIME,
    sliding_window_size=10,
    minimum_number_of_calls=4,
)


def make(config: BreakerConfig = LEAN, **changes):
    clock = ManualClock()
    breaker = CircuitBreaker("dep", dataclasses.replace(config, **changes), clock=clock)
    return breaker, clock


def listen(breaker: CircuitBreaker):
    transitions: list[StateTransition] = []
    calls: list[CallEvent] = []
    breaker.add_transition_listener(transitions.append)
    breaker.add_call_listener(calls.append)
    return transitions, calls


def trip(breaker: CircuitBreaker) -> None:
    while breaker.state is not OPEN:
        breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())


def half_open(breaker: CircuitBreaker, clock: ManualClock) -> None:
    trip(breaker)
    clock.advance(breaker.snapshot().retry_after)


# -- the state table ------------------------------------------------------------------------------


def test_the_state_table_covers_every_state_and_gives_the_gauge():
    assert set(STATES) == set(BreakerState)
    assert {state: STATES[state].gauge for state in BreakerState} == {
        state: state.gauge for state in BreakerState
    }
    assert {state for state in BreakerState if STATES[state].admits_all} == {
        CLOSED,
        BreakerState.DISABLED,
        BreakerState.METRICS_ONLY,
    }


def test_every_transition_the_machine_makes_is_in_the_table():
    breaker, clock = make(permitted_calls_in_half_open=1, success_threshold=1)
    transitions, _ = listen(breaker)
    half_open(breaker, clock)
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())  # failed trial
    clock.advance(60)
    breaker.on_success(0.0, breaker.try_acquire())  # successful trial
    for manual in (breaker.force_open, breaker.disable, breaker.metrics_only, breaker.reset):
        manual()
    automatic = [(t.from_state, t.to_state) for t in transitions[:5]]
    assert automatic == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]
    for event in transitions[:5]:
        assert event.to_state in STATES[event.from_state].next_states
    assert {t.to_state for t in transitions[5:]} == MANUAL_STATES


# -- event fields, transition times, retry_after --------------------------------------------------


def test_transition_events_carry_their_time_and_retry_after():
    breaker, clock = make(recovery_timeout_multiplier=2.0, permitted_calls_in_half_open=1)
    transitions, _ = listen(breaker)
    trip(breaker)  # at 1000
    clock.advance(60)
    trial = breaker.try_acquire()  # half-open at 1060
    clock.advance(1)
    breaker.on_error(ConnectionError(), 0.0, trial)  # open again at 1061, timeout doubled
    clock.advance(120)
    breaker.on_success(0.0, breaker.try_acquire())  # half-open at 1181
    clock.advance(2)
    breaker.on_success(0.0, breaker.try_acquire())  # closed at 1183
    clock.advance(3)
    breaker.force_open()  # at 1186
    assert transitions == [
        StateTransition("dep", CLOSED, OPEN, 1000.0, 60.0),
        StateTransition("dep", OPEN, HALF_OPEN, 1060.0, 0.0),
        StateTransition("dep", HALF_OPEN, OPEN, 1061.0, 120.0),
        StateTransition("dep", OPEN, HALF_OPEN, 1181.0, 0.0),
        StateTransition("dep", HALF_OPEN, CLOSED, 1183.0, 0.0),
        StateTransition("dep", CLOSED, BreakerState.FORCED_OPEN, 1186.0, 0.0),
    ]


def test_a_success_that_trips_opens_for_the_base_timeout():
    breaker, _ = make(
        TIMED,
        failure_threshold=None,
        sliding_window_type=COUNT,
        sliding_window_size=4,
        recovery_timeout_multiplier=3.0,
    )
    transitions, _ = listen(breaker)
    for _ in range(2):
        breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())
    breaker.on_success(0.0, breaker.try_acquire())
    breaker.on_success(0.0, breaker.try_acquire())  # the fourth call: 2 of 4 failed
    assert transitions[-1].retry_after == 60.0


def test_metrics_only_successes_never_trip_and_are_recorded():
    breaker, _ = make(TIMED, failure_threshold=None, minimum_number_of_calls=2)
    transitions, _ = listen(breaker)
    breaker.metrics_only()
    for _ in range(3):
        breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())
    breaker.on_success(0.0, breaker.try_acquire())
    snapshot = breaker.snapshot()
    assert breaker.state is BreakerState.METRICS_ONLY
    assert len(transitions) == 1
    assert (snapshot.calls, snapshot.failed_calls, snapshot.consecutive_failures) == (4, 3, 0)


@pytest.mark.parametrize("window", [COUNT, TIME])
def test_metrics_only_counts_slow_successes(window):
    breaker, _ = make(
        TIMED,
        sliding_window_type=window,
        failure_threshold=None,
        slow_call_duration_threshold=1.0,
        slow_call_rate_threshold=50.0,
    )
    breaker.metrics_only()
    breaker.on_success(2.0, breaker.try_acquire())
    breaker.on_success(0.5, breaker.try_acquire())
    snapshot = breaker.snapshot()
    assert (snapshot.calls, snapshot.failed_calls, snapshot.slow_calls) == (2, 0, 1)


@pytest.mark.parametrize("outcome", ["success", "failure", "ignored"])
def test_call_events_carry_duration_and_slowness(outcome):
    breaker, _ = make(TIMED, slow_call_duration_threshold=1.0, ignore_exceptions=(KeyError,))
    _, calls = listen(breaker)
    permit = breaker.try_acquire()
    if outcome == "success":
        breaker.on_success(2.5, permit)
    elif outcome == "failure":
        breaker.on_error(ConnectionError(), 2.5, permit)
    else:
        breaker.on_error(KeyError("k"), 2.5, permit)
    assert calls == [CallEvent("dep", Outcome(outcome), 2.5, outcome != "ignored")]


def test_call_events_of_a_windowless_breaker_carry_duration():
    breaker, _ = make()
    _, calls = listen(breaker)
    breaker.on_success(0.25, breaker.try_acquire())
    breaker.on_success()
    breaker.on_error(ConnectionError())
    breaker.on_result("value")
    assert calls == [
        CallEvent("dep", Outcome.SUCCESS, 0.25, False),
        CallEvent("dep", Outcome.SUCCESS, 0.0, False),
        CallEvent("dep", Outcome.FAILURE, 0.0, False),
        CallEvent("dep", Outcome.SUCCESS, 0.0, False),
    ]


def test_an_untimed_breaker_reports_no_duration_from_its_shells():
    breaker, clock = make()
    _, calls = listen(breaker)

    @breaker
    def slow_call() -> int:
        clock.advance(5)
        return 1

    slow_call()
    assert calls == [CallEvent("dep", Outcome.SUCCESS, 0.0, False)]


def test_rejection_events_have_no_duration():
    breaker, clock = make(permitted_calls_in_half_open=1)
    _, calls = listen(breaker)
    trip(breaker)
    assert breaker.try_acquire() is None  # rejected lock-free while OPEN
    clock.advance(60)
    assert breaker.try_acquire() is not None
    assert breaker.try_acquire() is None  # rejected under the lock: the trial slot is taken
    breaker.force_open()
    assert breaker.try_acquire() is None
    rejected = CallEvent("dep", Outcome.REJECTED, 0.0, False)
    assert [event for event in calls if event.outcome is Outcome.REJECTED] == [rejected] * 3


def test_standing_permits_are_not_trials_and_carry_the_time_of_their_state():
    breaker, clock = make(success_threshold=1)
    first = breaker.try_acquire()
    assert first is not None
    assert (first.trial, first.acquired_at) == (False, 1000.0)
    half_open(breaker, clock)
    trial = breaker.try_acquire()
    assert trial is not None
    assert trial.trial
    clock.advance(1)
    breaker.on_success(0.0, trial)
    closed = breaker.try_acquire()
    assert closed is not None
    assert (closed.trial, closed.acquired_at) == (False, 1061.0)


# -- the exact boundaries -------------------------------------------------------------------------


@pytest.mark.parametrize("report", ["success", "failure"])
def test_a_call_lasting_exactly_the_slow_threshold_is_not_slow(report):
    breaker, _ = make(TIMED, slow_call_duration_threshold=1.0)
    _, calls = listen(breaker)
    permit = breaker.try_acquire()
    if report == "success":
        breaker.on_success(1.0, permit)
    else:
        breaker.on_error(ConnectionError(), 1.0, permit)
    assert breaker.snapshot().slow_calls == 0
    assert not calls[0].slow


@pytest.mark.parametrize(
    ("rule", "script", "tripped"),
    [
        pytest.param("failure", "fail ok ok", False, id="failures-33.3-under-33.4"),
        pytest.param("failure", "fail ok ok fail", True, id="failures-50-over-33.4"),
        pytest.param("slow", "slow ok ok", False, id="slow-33.3-under-33.4"),
        pytest.param("slow", "slow ok slow", True, id="slow-66.7-over-33.4"),
    ],
)
def test_non_round_rate_thresholds(rule, script, tripped):
    changes = {"failure_rate_threshold": 33.4} if rule == "failure" else {}
    if rule == "slow":
        changes = {
            "failure_rate_threshold": None,
            "slow_call_duration_threshold": 1.0,
            "slow_call_rate_threshold": 33.4,
        }
    breaker, _ = make(
        TIMED,
        failure_threshold=None,
        sliding_window_type=COUNT,
        sliding_window_size=10,
        minimum_number_of_calls=3,
        **changes,
    )
    for step in script.split():
        permit = breaker.try_acquire()
        if step == "fail":
            breaker.on_error(ConnectionError(), 0.0, permit)
        else:
            breaker.on_success(2.0 if step == "slow" else 0.0, permit)
    assert (breaker.state is OPEN) is tripped


def test_a_single_call_is_enough_for_a_rate_when_the_minimum_is_one():
    breaker, _ = make(TIMED, failure_threshold=None, minimum_number_of_calls=1)
    breaker.on_success(0.0, breaker.try_acquire())
    assert breaker.snapshot().failure_rate == 0.0


def test_snapshot_of_a_windowless_breaker():
    breaker, _ = make()
    snapshot = breaker.snapshot()
    assert (snapshot.calls, snapshot.failed_calls, snapshot.slow_calls) == (0, 0, 0)
    assert (snapshot.failure_rate, snapshot.half_open_in_flight) == (None, 0)


def test_snapshot_retry_after_is_zero_once_the_open_timeout_has_passed():
    breaker, clock = make()
    trip(breaker)
    assert breaker.snapshot().half_open_in_flight == 0
    clock.advance(60.5)
    assert breaker.state is OPEN  # until a call asks
    assert breaker.snapshot().retry_after == 0.0
    breaker.force_open()
    assert breaker.snapshot().retry_after == 60.0


def test_a_caller_that_raced_a_trip_is_told_the_wait():
    breaker, clock = make()
    trip(breaker)
    clock.advance(20)
    # As if the lock-free test had read the deadline of the CLOSED state just before the trip.
    assert breaker._acquire_locked(clock()) == 40.0
    breaker.reset()
    # And one that raced a close: the standing permit.
    assert breaker._acquire_locked(clock()) is breaker.try_acquire()


# -- half-open slots ------------------------------------------------------------------------------


def test_half_open_wait_is_the_time_left_on_the_oldest_slot():
    breaker, clock = make(success_threshold=3)
    half_open(breaker, clock)
    snapshot = breaker.snapshot()
    assert (snapshot.half_open_in_flight, snapshot.retry_after) == (0, 0.0)
    first = breaker.try_acquire()
    assert breaker.snapshot().retry_after == 0.0  # a slot is still free
    clock.advance(5)
    second = breaker.try_acquire()
    assert first is not None
    assert second is not None
    clock.advance(4.5)
    with pytest.raises(CallNotPermitted) as caught, breaker:
        pass
    assert caught.value.retry_after == pytest.approx(0.5)
    assert breaker.snapshot().retry_after == pytest.approx(0.5)


@pytest.mark.parametrize("report", ["success", "ignored"])
def test_a_reported_trial_frees_its_own_slot(report):
    breaker, clock = make(success_threshold=3, ignore_exceptions=(KeyError,))
    half_open(breaker, clock)
    older = breaker.try_acquire()
    clock.advance(5)
    newer = breaker.try_acquire()
    assert older is not None
    if report == "success":
        breaker.on_success(0.0, newer)
    else:
        breaker.on_error(KeyError("k"), 0.0, newer)
    assert breaker.try_acquire() is not None  # the freed slot
    # Full again: the older trial's slot frees first, 5 s from now.
    assert breaker.snapshot().retry_after == pytest.approx(5.0)


def test_a_lost_trial_frees_only_its_own_slot():
    breaker, clock = make(success_threshold=3)
    half_open(breaker, clock)
    assert breaker.try_acquire() is not None  # lost: never reported
    clock.advance(9)
    assert breaker.try_acquire() is not None
    clock.advance(1)  # the first slot is lost now, the second is not
    assert breaker.try_acquire() is not None
    assert breaker.try_acquire() is None
    assert breaker.snapshot().half_open_in_flight == 2


def test_a_trial_exactly_at_the_slot_timeout_is_lost():
    breaker, clock = make()
    half_open(breaker, clock)
    assert breaker.try_acquire() is not None
    clock.advance(10)
    assert breaker.snapshot().half_open_in_flight == 0


def test_an_ignored_report_without_a_permit_frees_the_oldest_slot():
    breaker, clock = make(permitted_calls_in_half_open=1, ignore_exceptions=(KeyError,))
    half_open(breaker, clock)
    assert breaker.try_acquire() is not None
    breaker.on_error(KeyError("k"))
    assert breaker.try_acquire() is not None


def test_a_new_half_open_spell_starts_from_zero():
    breaker, clock = make(success_threshold=2)
    half_open(breaker, clock)
    breaker.on_success(0.0, breaker.try_acquire())
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())  # open again
    clock.advance(60)
    breaker.on_success(0.0, breaker.try_acquire())
    assert breaker.state is HALF_OPEN  # the success of the last spell does not count


# -- stale permits and reports without a permit ---------------------------------------------------


@pytest.mark.parametrize("report", ["on_success", "on_result"])
def test_a_stale_success_does_not_count_in_half_open(report):
    breaker, clock = make(success_threshold=2)
    early = breaker.try_acquire()
    half_open(breaker, clock)
    breaker.on_success(0.0, breaker.try_acquire())
    getattr(breaker, report)(*(["value"] if report == "on_result" else []), 0.0, early)
    assert breaker.state is HALF_OPEN


def test_a_stale_predicate_failure_does_not_reopen():
    breaker, clock = make(failure_predicate=lambda result: result is None)
    early = breaker.try_acquire()
    half_open(breaker, clock)
    assert breaker.try_acquire() is not None
    breaker.on_result(None, 0.0, early)
    assert breaker.state is HALF_OPEN


def test_a_trial_from_an_earlier_spell_is_stale():
    breaker, clock = make(success_threshold=1, permitted_calls_in_half_open=2)
    half_open(breaker, clock)
    old_trial = breaker.try_acquire()
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())  # open again
    clock.advance(60)
    assert breaker.try_acquire() is not None  # half-open again, trial in flight
    breaker.on_success(0.0, old_trial)
    assert breaker.state is HALF_OPEN


def test_a_stale_success_is_not_recorded_in_a_later_closed_state():
    breaker, clock = make(TIMED, success_threshold=1)
    early = breaker.try_acquire()
    half_open(breaker, clock)
    breaker.on_success(0.0, breaker.try_acquire())
    assert breaker.state is CLOSED
    breaker.on_success(0.0, early)
    assert breaker.snapshot().calls == 0


def test_a_success_without_a_permit_resets_the_consecutive_count():
    breaker, _ = make()
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())
    breaker.on_success()
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())
    assert breaker.state is CLOSED
    assert breaker.snapshot().consecutive_failures == 2


@pytest.mark.parametrize("permitted", [False, True], ids=["without-permit", "with-permit"])
def test_results_are_recorded_in_a_time_window(permitted):
    breaker, clock = make(TIMED, failure_predicate=lambda result: result is None)
    clock.advance(0.5)
    breaker.on_result("value", 0.0, breaker.try_acquire() if permitted else None)
    breaker.on_result(None, 0.0, breaker.try_acquire() if permitted else None)
    snapshot = breaker.snapshot()
    assert (snapshot.calls, snapshot.failed_calls) == (2, 1)


def test_successes_without_a_permit_can_trip_a_time_window():
    breaker, _ = make(TIMED, failure_threshold=None, recovery_timeout_multiplier=3.0)
    for _ in range(2):
        breaker.on_error(ConnectionError())
    breaker.on_success()
    assert breaker.state is CLOSED
    breaker.on_success()  # the fourth call: 2 of 4 failed
    assert breaker.state is OPEN
    assert breaker.snapshot().retry_after == 60.0  # a first trip: no growth


def test_the_slow_rate_rule_needs_both_thresholds():
    breaker, _ = make(
        TIMED,
        slow_call_rate_threshold=None,
        slow_call_duration_threshold=1.0,
        failure_threshold=None,
    )
    for _ in range(4):
        breaker.on_success(5.0, breaker.try_acquire())
    assert breaker.state is CLOSED


def test_closing_by_hand_when_closed_clears_the_count():
    breaker, _ = make()
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())
    breaker.transition_to_closed()
    assert breaker.snapshot().consecutive_failures == 0
    breaker.on_error(ConnectionError(), 0.0, breaker.try_acquire())
    assert breaker.snapshot().consecutive_failures == 1
