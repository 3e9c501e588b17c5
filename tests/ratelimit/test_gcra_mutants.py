"""GCRA and the decision over several limits at their exact edges (mutation tests).

Each test pins one value the model tests in test_ratelimit_gcra.py reach only by chance: a
retry of one microsecond, the figures of a request no burst can hold, the binding limit of a
rejection, the time unit of large sliding limits, and the validation of ``cost``.
"""

from __future__ import annotations

import pytest

from fender.ratelimit._gcra import (
    cells_for,
    check_cost,
    decide_one,
    evaluate,
    gcra_step,
    impossible,
    initial_state,
)
from fender.ratelimit._policy import Algorithm, Limit, parse_policy
from fender.ratelimit._sliding import EMPTY, sliding_step

GCRA = Algorithm.GCRA
SLIDING = Algorithm.SLIDING_WINDOW
NOW = 10_000_000_000  # microseconds
SECOND = 1_000_000


def test_a_retry_of_one_microsecond_still_rejects():
    # emission 1 s, tolerance 2 s: the third request at once would pass 1 us later.
    tat = NOW + SECOND + 1
    assert gcra_step(tat, NOW, SECOND, 2 * SECOND, 1) == (False, tat, 1, 0, SECOND + 1)
    tat = NOW + SECOND
    assert gcra_step(tat, NOW, SECOND, 2 * SECOND, 1) == (True, tat + SECOND, 0, 0, 2 * SECOND)


def test_a_tat_in_the_past_counts_from_now():
    assert gcra_step(NOW - 5, NOW, SECOND, 2 * SECOND, 1) == (True, NOW + SECOND, 0, 1, SECOND)
    assert gcra_step(NOW - 5, NOW, SECOND, 2 * SECOND, 0) == (True, NOW, 0, 2, 0)


def test_cells_for_appends_each_limit_suffix_to_the_key():
    policy = parse_policy("10/second; 100/minute", name="api")
    second, minute = policy.limits
    assert cells_for([("ip:1", policy)], GCRA) == [
        ("ip:1:g1", "api:1s", second),
        ("ip:1:g60", "api:60s", minute),
    ]
    assert cells_for([("a", policy), ("b", parse_policy("5/hour"))], SLIDING)[1:] == [
        ("a:s60", "api:60s", minute),
        ("b:s3600", "default", Limit(count=5, period=3600)),
    ]


def test_initial_state_per_algorithm():
    assert initial_state(GCRA) == 0
    assert initial_state(SLIDING) == EMPTY


class _Cost(int):
    """An int subclass: past the fast path of check_cost, still a valid cost."""


@pytest.mark.parametrize("cost", [0, 1, 7, _Cost(0), _Cost(3)])
def test_check_cost_accepts_non_negative_integers(cost):
    check_cost(cost)


@pytest.mark.parametrize("cost", [-1, _Cost(-1), True, False, 1.0, 0.5, "1", None])
def test_check_cost_rejects_anything_else_by_name(cost):
    with pytest.raises(ValueError) as info:
        check_cost(cost)
    assert str(info.value) == f"cost must be an integer >= 0, not {cost!r}"


def _assert_never(decision, key, name, limit, reason):
    assert decision.allowed is False
    assert decision.limit == limit.count
    assert decision.window == limit.period
    assert decision.remaining == 0
    assert decision.reset_after == 0.0
    assert decision.retry_after is None
    assert decision.policy == name
    assert decision.key == key
    assert decision.reason == reason


def test_impossible_uses_each_algorithms_capacity():
    limit = Limit(count=5, period=60, burst=8)
    cells = [("k:g1", "x:1s", Limit(count=100, period=1)), ("k:g60", "x:60s", limit)]
    assert impossible(cells, 8, GCRA) is None
    assert impossible(cells, 5, SLIDING) is None
    reason = "cost 9 exceeds the burst 8 of 'x:60s' (5/minute burst 8); it can never be admitted"
    _assert_never(impossible(cells, 9, GCRA), "k:g60", "x:60s", limit, reason)
    reason = "cost 6 exceeds the burst 5 of 'x:60s' (5/minute burst 8); it can never be admitted"
    _assert_never(impossible(cells, 6, SLIDING), "k:g60", "x:60s", limit, reason)


@pytest.mark.parametrize(("algorithm", "cost", "capacity"), [(GCRA, 9, 8), (SLIDING, 6, 5)])
def test_a_cost_no_burst_holds_is_never_admitted(algorithm, cost, capacity):
    limit = Limit(count=5, period=60, burst=8)
    reason = (
        f"cost {cost} exceeds the burst {capacity} of 'x' (5/minute burst 8);"
        " it can never be admitted"
    )
    state = initial_state(algorithm)
    decision, new, ttl = decide_one("k", "x", limit, state, NOW, cost, algorithm)
    _assert_never(decision, "k", "x", limit, reason)
    assert (new, ttl) == (state, 0)
    # The same through several limits: the other one could hold it.
    wide = Limit(count=100, period=1)
    cells = [("w", "w", wide), ("k", "x", limit)]
    decision, writes = evaluate(cells, [state, state], NOW, cost, algorithm)
    assert writes is None
    _assert_never(decision, "k", "x", limit, reason)
    # At the capacity it is counted.
    decision, writes = evaluate(cells, [state, state], NOW, capacity, algorithm)
    assert decision.allowed
    assert writes is not None


def test_a_sliding_cost_above_the_count_but_within_the_burst_is_never_admitted():
    limit = Limit(count=5, period=60, burst=10)
    cells = [("w", "w", Limit(count=100, period=1)), ("k", "x", limit)]
    decision, writes = evaluate(cells, [EMPTY, EMPTY], NOW, 7, SLIDING)
    assert writes is None
    assert decision.retry_after is None
    assert decision.reason.startswith("cost 7 exceeds the burst 5 of 'x'")


def test_a_rejection_is_bound_by_the_longest_wait_not_the_emptiest_limit():
    # 3/second is empty but refills in 1 s (3 emissions of 333,334 us: rounded up); 4/minute
    # still has 1 but needs 30 s for 3.
    policy = parse_policy("3/second; 4/minute", name="p")
    cells = cells_for([("k", policy)], GCRA)
    decision, writes = evaluate(cells, [0, 0], NOW, 3, GCRA)
    assert decision.allowed
    assert writes is not None
    states = [state for state, _ttl in writes]
    decision, writes = evaluate(cells, states, NOW, 3, GCRA)
    assert writes is None
    assert (decision.policy, decision.key) == ("p:60s", "k:g60")
    assert decision.retry_after == 30.0
    assert decision.remaining == 1
    assert decision.reason == "rate limit 'p:60s' (4/minute) exceeded"
    assert [(s.allowed, s.remaining, s.retry_after) for s in decision.statuses] == [
        (False, 0, 1.000002),
        (False, 1, 30.0),
    ]


def test_no_limit_is_no_decision():
    with pytest.raises(ValueError, match=r"^a decision needs at least one limit$"):
        evaluate([], [], NOW, 1, GCRA)


def _coarse_expectation(limit, state, now, cost):
    return sliding_step(state, now, limit.count, limit.sliding_window, cost, limit.sliding_unit_us)


@pytest.mark.parametrize("cost", [1, 1_000_000])
def test_large_sliding_limits_count_in_their_coarse_unit(cost):
    limit = Limit(count=1_000_000, period=86_400)
    assert limit.sliding_unit_us == 100
    now = NOW + 12_345  # not on a unit boundary: microseconds and units differ
    state = (now // 100 // limit.sliding_window, 999_999, 0)
    allowed, new, retry, remaining, reset = _coarse_expectation(limit, state, now, cost)
    decision, stored, ttl = decide_one("k", "x", limit, state, now, cost, SLIDING)
    assert decision.allowed is allowed
    assert decision.remaining == remaining
    assert decision.retry_after == retry / SECOND
    assert decision.reset_after == reset / SECOND
    if allowed:
        assert (stored, ttl) == (new, reset)
    # The same limit beside another, through the general path.
    cells = [("k", "x", limit), ("w", "w", Limit(count=2_000_000, period=86_400))]
    decision, _writes = evaluate(cells, [state, EMPTY], now, cost, SLIDING)
    status = decision.statuses[0]
    assert status.allowed is allowed
    assert status.retry_after == retry / SECOND
    if allowed:
        assert (status.remaining, status.reset_after) == (remaining, reset / SECOND)
