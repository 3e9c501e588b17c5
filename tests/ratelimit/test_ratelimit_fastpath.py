"""The one-pass arithmetic and the lazily built decision decide exactly as the code they replaced.

The ``ref_*`` functions are the separate update and view steps (and the decision over several
limits) as they stood before ``gcra_step``, ``sliding_step`` and ``one_limit_decision``
replaced them on the request path; ``ratelimit.lua`` mirrors the same arithmetic.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from fender.ratelimit._gcra import decide_one, evaluate, gcra_step
from fender.ratelimit._policy import (
    Algorithm,
    Decision,
    Limit,
    LimitStatus,
    one_limit_decision,
    parse_policy,
)
from fender.ratelimit._sliding import sliding_step

US = 1_000_000
START = 10**15  # microseconds: as large as a monotonic clock reads after a long uptime


def ref_gcra_update(tat, now, emission, tolerance, cost):
    tat = max(tat, now)
    new_tat = tat + cost * emission
    allow_at = new_tat - tolerance
    if allow_at > now:
        return False, tat, allow_at - now
    return True, new_tat, 0


def ref_gcra_view(tat, now, emission, tolerance):
    reset = tat - now if tat > now else 0
    return max(0, (tolerance - reset) // emission), reset


def ref_current(state, index):
    window, current, previous = state
    if window == index:
        return current, previous
    if window == index - 1:
        return 0, current
    return 0, 0


def ref_sliding_update(state, now, limit, window, cost):
    index = now // window
    current, previous = ref_current(state, index)
    elapsed = now - index * window
    if previous * (window - elapsed) + (current + cost) * window <= limit * window:
        return True, (index, current + cost, previous), 0
    if current + cost <= limit:
        return False, state, window - elapsed - (limit - current - cost) * window // previous
    return False, state, (window - elapsed) + window - (limit - cost) * window // current


def ref_sliding_view(state, now, limit, window):
    index = now // window
    current, previous = ref_current(state, index)
    elapsed = now - index * window
    free = limit * window - previous * (window - elapsed) - current * window
    remaining = max(0, free // window)
    if current:
        return remaining, 2 * window - elapsed
    if previous:
        return remaining, window - elapsed
    return remaining, 0


def ref_update(state, now, limit, cost, algorithm):
    if algorithm is Algorithm.GCRA:
        return ref_gcra_update(state, now, limit.emission_us, limit.tolerance_us, cost)
    unit = limit.sliding_unit_us
    t = now // unit
    ok, new, retry = ref_sliding_update(state, t, limit.count, limit.period_us // unit, cost)
    return ok, new, ((t + retry) * unit - now if retry else 0)


def ref_view(state, now, limit, algorithm):
    if algorithm is Algorithm.GCRA:
        return ref_gcra_view(state, now, limit.emission_us, limit.tolerance_us)
    unit = limit.sliding_unit_us
    t = now // unit
    remaining, reset = ref_sliding_view(state, t, limit.count, limit.period_us // unit)
    return remaining, ((t + reset) * unit - now if reset else 0)


def ref_evaluate(cells, states, now, cost, algorithm):
    """Every request the general way: ``(Decision, writes)``, statuses built eagerly."""
    for _key, _name, limit in cells:
        if cost > limit.capacity(algorithm):
            return None, None  # the rejection without arithmetic: compared separately
    steps = [ref_update(s, now, c[2], cost, algorithm) for c, s in zip(cells, states, strict=True)]
    allowed = all(ok for ok, _, _ in steps)
    writes = [] if allowed else None
    statuses, binding, rank = [], None, None
    for (key, name, limit), state, (_, new, retry) in zip(cells, states, steps, strict=True):
        remaining, reset = ref_view(new if allowed else state, now, limit, algorithm)
        status = LimitStatus(key, name, limit, retry == 0, remaining, reset / US, retry / US)
        statuses.append(status)
        if writes is not None:
            writes.append((new, reset))
        this = (remaining, -reset) if allowed else (-retry, 0)
        if binding is None or this < rank:
            binding, rank = status, this
    reason = "" if allowed else f"rate limit {binding.name!r} ({binding.limit}) exceeded"
    decision = Decision(
        allowed,
        binding.limit.count,
        binding.limit.period,
        binding.remaining,
        binding.reset_after,
        binding.retry_after,
        binding.name,
        binding.key,
        reason,
        tuple(statuses),
    )
    return decision, writes


limits_st = (
    st.tuples(
        st.sampled_from([1, 2, 3, 7, 10, 100, 1_000_000, 5_000_000]),
        st.sampled_from([1, 2, 10, 60, 3600, 86_400]),
        st.integers(0, 12),
    )
    .filter(lambda t: t[0] <= t[1] * US)  # at most one request per microsecond
    .map(lambda t: Limit(count=t[0], period=t[1], burst=t[2]))
)


@given(
    limit=limits_st,
    tat=st.one_of(st.just(0), st.integers(START - 10**9, START + 10**10)),
    cost=st.integers(0, 14),
)
def test_gcra_step_is_update_then_view(limit, tat, cost):
    e, t = limit.emission_us, limit.tolerance_us
    ok, new, retry = ref_gcra_update(tat, START, e, t, cost)
    assert gcra_step(tat, START, e, t, cost) == (ok, new, retry, *ref_gcra_view(new, START, e, t))


@given(limit=limits_st, data=st.data())
def test_sliding_step_is_update_then_view_in_microseconds(limit, data):
    unit, window = limit.sliding_unit_us, limit.sliding_window
    now = data.draw(st.integers(START, START + 3 * limit.period_us))
    index = now // unit // window
    count = limit.count
    state = data.draw(
        st.one_of(
            st.just((0, 0, 0)),
            st.tuples(st.integers(index - 3, index), st.integers(0, count), st.integers(0, count)),
        )
    )
    cost = data.draw(st.integers(0, count))
    ok, new, retry = ref_update(state, now, limit, cost, Algorithm.SLIDING_WINDOW)
    view = ref_view(new, now, limit, Algorithm.SLIDING_WINDOW)
    assert sliding_step(state, now, count, window, cost, unit) == (ok, new, retry, *view)


policies_st = st.sampled_from(
    ["3/second", "2/second burst 5", "3/second; 5/10seconds", "1/second; 4/minute; 50/hour"]
)


@settings(max_examples=80)
@given(
    algorithm=st.sampled_from(list(Algorithm)),
    texts=st.lists(policies_st, min_size=1, max_size=2),
    steps=st.lists(st.tuples(st.integers(0, 2_500_000), st.integers(0, 6)), max_size=40),
)
def test_decisions_equal_the_general_way_over_any_sequence(algorithm, texts, steps):
    cells = [
        (f"k{i}{suffix}", name, limit)
        for i, text in enumerate(texts)
        for suffix, name, limit in parse_policy(text).cells[algorithm]
    ]
    states = [0 if algorithm is Algorithm.GCRA else (0, 0, 0)] * len(cells)
    now = START
    for dt, cost in steps:
        now += dt
        expected, expected_writes = ref_evaluate(cells, states, now, cost, algorithm)
        decision, writes = evaluate(cells, states, now, cost, algorithm)
        if expected is None:
            assert decision.retry_after is None
            assert writes is None
            continue
        assert decision == expected
        assert decision.statuses == expected.statuses
        assert writes == expected_writes
        if writes is not None:
            states = [state for state, _ in writes]


def test_a_lazy_decision_is_the_eager_one_in_every_respect():
    limit = parse_policy("10/second").limits[0]
    eager = Decision(
        False,
        10,
        1,
        0,
        0.5,
        0.05,
        "default",
        "k:g1",
        "limited",
        (LimitStatus("k:g1", "default", limit, False, 0, 0.5, 0.05),),
    )

    def lazy():
        return one_limit_decision(limit, "default", "k:g1", False, 0, 0.5, 0.05, "limited")

    assert lazy() == eager
    assert eager == lazy()
    assert repr(lazy()) == repr(eager)
    assert dataclasses.asdict(lazy()) == dataclasses.asdict(eager)
    assert pickle.loads(pickle.dumps(lazy())) == eager
    assert copy.copy(lazy()) == eager
    assert copy.deepcopy(lazy()) == eager
    assert dataclasses.replace(lazy(), reason="x") == dataclasses.replace(eager, reason="x")
    decision = lazy()
    assert decision.statuses is decision.statuses  # built once, then kept
    assert decision.header_value() == eager.header_value()
    assert decision.retry_after_header() == eager.retry_after_header()
    assert not hasattr(decision, "no_such_field")


def test_decide_one_reports_what_to_store():
    limit = parse_policy("2/second").limits[0]
    first, state, ttl = decide_one("k:g1", "default", limit, 0, START, 1, Algorithm.GCRA)
    assert (first.allowed, state, ttl) == (True, START + 500_000, 500_000)
    _, state, _ = decide_one("k:g1", "default", limit, state, START, 1, Algorithm.GCRA)
    rejected, kept, ttl = decide_one("k:g1", "default", limit, state, START, 1, Algorithm.GCRA)
    assert (rejected.allowed, kept, ttl) == (False, state, 0)
    never, _, ttl = decide_one("k:g1", "default", limit, 0, START, 3, Algorithm.GCRA)
    assert (never.retry_after, never.statuses, ttl) == (None, (), 0)
