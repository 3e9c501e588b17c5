"""The pure arithmetic against simple reference models in exact fractions."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from fender.ratelimit._gcra import (
    _evaluate_many,
    evaluate,
    evaluate_one,
    gcra_update,
    gcra_view,
)
from fender.ratelimit._policy import Algorithm, Limit
from fender.ratelimit._sliding import EMPTY, sliding_step, sliding_update, sliding_view

START = 1_000_000_000  # microseconds

steps_st = st.lists(
    st.tuples(st.integers(0, 3_000_000), st.integers(0, 6)), min_size=1, max_size=60
)


class TokenBucket:
    """GCRA's equivalent: a bucket of ``burst`` tokens refilled one per ``emission`` us."""

    def __init__(self, emission, burst):
        self.emission = emission
        self.burst = burst
        self.tokens = Fraction(burst)
        self.last = START

    def hit(self, now, cost):
        self.tokens = min(
            Fraction(self.burst), self.tokens + Fraction(now - self.last, self.emission)
        )
        self.last = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True, 0
        return False, (cost - self.tokens) * self.emission


@given(
    count=st.integers(1, 50),
    period=st.sampled_from([1, 2, 10, 60]),
    burst=st.integers(1, 60),
    steps=steps_st,
)
def test_gcra_matches_a_token_bucket(count, period, burst, steps):
    limit = Limit(count=count, period=period, burst=burst)
    model = TokenBucket(limit.emission_us, burst)
    tat, now = 0, START
    for dt, cost in steps:
        now += dt
        allowed, new, retry = gcra_update(tat, now, limit.emission_us, limit.tolerance_us, cost)
        expected_allowed, expected_retry = model.hit(now, cost) if cost <= burst else (False, None)
        if cost > burst:
            assert not allowed
            continue
        assert allowed == expected_allowed
        assert retry == expected_retry
        if allowed:
            tat = new
        remaining, reset = gcra_view(tat, now, limit.emission_us, limit.tolerance_us)
        assert remaining == int(model.tokens)
        assert reset == (burst - model.tokens) * limit.emission_us


def estimate(state, now, window):
    index = now // window
    w, current, previous = state
    if w == index - 1:
        current, previous = 0, current
    elif w != index:
        current, previous = 0, 0
    elapsed = now - index * window
    return Fraction(previous * (window - elapsed), window) + current


@given(limit=st.integers(1, 30), window=st.sampled_from([10, 1000, 1_000_000]), steps=steps_st)
def test_sliding_window_matches_its_definition(limit, window, steps):
    state, now = EMPTY, START
    for dt, cost in steps:
        now += dt % (3 * window)
        if cost > limit:
            continue
        allowed, new, retry = sliding_update(state, now, limit, window, cost)
        assert allowed == (estimate(state, now, window) + cost <= limit)
        if allowed:
            assert retry == 0
            state = new
        else:
            assert new == state
            # retry_after is exact: passing at now + retry, not one microsecond earlier.
            assert estimate(state, now + retry, window) + cost <= limit
            assert estimate(state, now + retry - 1, window) + cost > limit
        remaining, reset = sliding_view(state, now, limit, window)
        assert remaining == max(0, int(limit - estimate(state, now, window)))
        assert estimate(state, now + reset, window) == 0
        if reset:
            assert estimate(state, now + reset - 1, window) > 0


@settings(max_examples=60)
@given(
    algorithm=st.sampled_from(list(Algorithm)),
    count=st.integers(1, 20),
    burst=st.integers(0, 20),
    steps=steps_st,
)
def test_single_limit_fast_path_equals_the_general_path(algorithm, count, burst, steps):
    limit = Limit(count=count, period=1, burst=burst if algorithm is Algorithm.GCRA else 0)
    cell = ("k:g1", "default", limit)
    state = 0 if algorithm is Algorithm.GCRA else EMPTY
    now = START
    for dt, cost in steps:
        now += dt
        fast = evaluate_one(cell, state, now, cost, algorithm)
        general = _evaluate_many([cell], [state], now, cost, algorithm)
        assert fast[0] == general[0]
        assert (None if fast[1] is None else [fast[1]]) == general[1]
        if fast[1] is not None:
            state = fast[1][0]


@given(
    counts=st.lists(st.integers(1, 5), min_size=2, max_size=4),
    steps=steps_st,
)
def test_a_rejection_consumes_from_no_limit(counts, steps):
    cells = [(f"k{i}", f"p{i}", Limit(count=c, period=i + 1)) for i, c in enumerate(counts)]
    states = [0] * len(cells)
    now = START
    for dt, cost in steps:
        now += dt
        decision, writes = evaluate(cells, states, now, cost, Algorithm.GCRA)
        if cost > min(counts):
            assert decision.retry_after is None
            assert writes is None
            continue
        single = [
            evaluate_one(cell, state, now, cost, Algorithm.GCRA)[0].allowed
            for cell, state in zip(cells, states, strict=True)
        ]
        assert decision.allowed == all(single)
        assert (writes is None) != decision.allowed
        if decision.allowed:
            states = [state for state, _ in writes]
            assert decision.remaining == min(s.remaining for s in decision.statuses)
        else:
            assert decision.retry_after == max(s.retry_after for s in decision.statuses)
            assert decision.reason


def test_cost_above_the_burst_is_rejected_with_a_reason_not_an_endless_wait():
    cell = ("k", "default", Limit(count=10, period=1, burst=3))
    decision, writes = evaluate([cell], [0], START, 4, Algorithm.GCRA)
    assert writes is None
    assert not decision.allowed
    assert decision.retry_after is None
    assert "cost 4 exceeds the burst 3" in decision.reason
    decision, _ = evaluate([cell], [0], START, 11, Algorithm.SLIDING_WINDOW)
    assert "exceeds the burst 10" in decision.reason


def test_large_sliding_limits_use_a_coarser_unit():
    assert Limit(count=10, period=60).sliding_unit_us == 1
    assert Limit(count=1_000_000, period=86_400).sliding_unit_us == 100


@given(
    count=st.sampled_from([1_000_000, 5_000_000]),
    period=st.sampled_from([3600, 86_400]),
    data=st.data(),
)
def test_coarse_unit_sliding_retry_is_exact_in_microseconds(count, period, data):
    limit = Limit(count=count, period=period)
    unit = limit.sliding_unit_us
    window = limit.period_us // unit
    assert window == limit.sliding_window
    now = data.draw(st.integers(10**15, 10**15 + 10 * limit.period_us))
    index = now // unit // window
    state = (
        index - data.draw(st.integers(0, 1)),
        data.draw(st.integers(0, count)),
        data.draw(st.integers(0, count)),
    )
    cost = data.draw(st.integers(1, 100))

    def passes(at):
        return estimate(state, at // unit, window) + cost <= count

    allowed, _, retry, _, _ = sliding_step(state, now, count, window, cost, unit)
    assert allowed == passes(now)
    if not allowed:
        assert passes(now + retry)
        assert not passes(now + retry - 1)
    *_, reset = sliding_step(state, now, count, window, 0, unit)  # counting nothing: the view
    assert estimate(state, (now + reset) // unit, window) == 0
