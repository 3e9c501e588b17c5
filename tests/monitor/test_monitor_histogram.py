"""The latency histogram: bins, quantiles within a bin, exact about a split, merging by addition."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from fender.monitor._histogram import BINS, FLOOR, bin_of, quantile, upper_bound

BIN = 2 ** (1 / 4)  # the most an interpolation inside a bin can be off by: the bin's width


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
def test_a_quantile_is_within_a_bin_of_a_true_order_statistic(durations, q):
    estimate = quantile(histogram(durations), q)
    ordered = sorted(durations)
    rank = q * len(ordered)
    # the true quantile lies between the order statistics around the rank
    low = ordered[max(0, math.ceil(rank) - 1)]
    high = ordered[min(len(ordered) - 1, math.ceil(rank))]
    assert estimate is not None
    assert low / BIN <= estimate <= high * BIN


def test_a_constant_latency_may_read_up_to_its_bin_top_without_a_split():
    counts = histogram([0.450] * 100)
    assert 0.5 < quantile(counts, 0.99) <= upper_bound(bin_of(0.450))
    assert quantile(counts, 0.99, split=(0.5, 0)) <= 0.5


@given(
    st.lists(st.floats(min_value=0.0001, max_value=30.0), min_size=1, max_size=300),
    st.floats(min_value=0.001, max_value=20.0),
    st.sampled_from([0.5, 0.9, 0.95, 0.99]),
)
def test_a_split_quantile_is_above_the_edge_exactly_when_fewer_than_q_were_at_most_it(
    durations, edge, q
):
    above = sum(1 for d in durations if d > edge)
    estimate = quantile(histogram(durations), q, split=(edge, above))
    assert estimate is not None
    assert (estimate > edge) is (len(durations) - above < q * len(durations))


def test_a_bound_belongs_to_the_bin_it_closes():
    for index in (1, 10, 40):
        assert bin_of(upper_bound(index)) in {index, index + 1}  # float rounding at the edge
        assert bin_of(upper_bound(index) * (1 - 1e-9)) == index
        assert bin_of(upper_bound(index) * (1 + 1e-9)) == index + 1


@given(
    st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=50),
    st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=50),
)
def test_histograms_merge_by_adding_counts(first, second):
    merged = [a + b for a, b in zip(histogram(first), histogram(second), strict=True)]
    assert merged == histogram(first + second)
