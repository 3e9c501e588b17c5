"""The latency histogram: bins, quantiles within half a bin, merging by addition."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from fender.monitor._histogram import BINS, FLOOR, bin_of, quantile, upper_bound

HALF_BIN = 2 ** (1 / 8)  # the most a geometric interpolation inside a bin can be off by


def histogram(durations: list[float]) -> list[int]:
    counts = [0] * BINS
    for duration in durations:
        counts[bin_of(duration)] += 1
    return counts


def test_every_duration_falls_in_the_bin_whose_bounds_hold_it():
    for duration in (0.0, FLOOR / 2, FLOOR * 1.01, 0.001, 0.0123, 0.5, 3.0, 60.0):
        index = bin_of(duration)
        assert duration <= upper_bound(index) * (1 + 1e-12)
        if index:
            assert duration > upper_bound(index - 1) * (1 - 1e-12)


def test_the_overflow_bin_takes_what_is_past_the_last_bound():
    assert bin_of(3600.0) == BINS - 1
    assert math.isinf(upper_bound(BINS - 1))
    # reported as "at least" the last finite bound
    assert quantile(histogram([3600.0] * 10), 0.99) == upper_bound(BINS - 2)


def test_an_empty_histogram_has_no_quantile():
    assert quantile([0] * BINS, 0.5) is None


@given(
    st.lists(st.floats(min_value=0.0005, max_value=30.0), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.9, 0.95, 0.99]),
)
def test_a_quantile_is_within_half_a_bin_of_a_true_order_statistic(durations, q):
    estimate = quantile(histogram(durations), q)
    ordered = sorted(durations)
    rank = q * len(ordered)
    # the true quantile lies between the order statistics around the rank
    low = ordered[max(0, math.ceil(rank) - 1)]
    high = ordered[min(len(ordered) - 1, math.ceil(rank))]
    assert estimate is not None
    assert low / (HALF_BIN * 2 ** (1 / 8)) <= estimate <= high * HALF_BIN * 2 ** (1 / 8)


@given(
    st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=50),
    st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=50),
)
def test_histograms_merge_by_adding_counts(first, second):
    merged = [a + b for a, b in zip(histogram(first), histogram(second), strict=True)]
    assert merged == histogram(first + second)
