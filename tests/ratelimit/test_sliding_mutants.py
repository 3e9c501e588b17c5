"""The sliding window at its exact edges: tiny windows, coarse time units (mutation tests)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from fender.ratelimit._policy import Limit
from fender.ratelimit._sliding import sliding_step


def _estimate(state, t, window):
    """Requests in the trailing window at unit ``t``, by the definition (exact)."""
    stored, current, previous = state
    index = t // window
    if stored == index - 1:
        current, previous = 0, current
    elif stored != index:
        current, previous = 0, 0
    return Fraction(previous * (window - (t - index * window)), window) + current


def test_remaining_counts_a_single_free_request_in_a_one_unit_window():
    assert sliding_step((0, 1, 0), 0, 2, 1, 0) == (True, (0, 1, 0), 0, 1, 2)
    assert sliding_step((0, 2, 0), 0, 2, 1, 0) == (True, (0, 2, 0), 0, 0, 2)


# A large limit counts in units of 100 us (see Limit.sliding_unit_us).
LARGE = Limit(count=1_000_000, period=86_400)
UNIT = LARGE.sliding_unit_us
WINDOW = LARGE.sliding_window
START = 7 * WINDOW * UNIT  # the first microsecond of a window


@pytest.mark.parametrize(
    ("state", "offset", "retry_us", "reset_us"),
    [
        # This window full: only the next one helps, once this one's weight is low enough.
        ((7, 1_000_000, 0), 12_345, 86_400_074_055, 172_799_987_655),
        # The previous window full, 123 units in: wait until unit 864, when 1 request's worth
        # has slid out.
        ((6, 1_000_000, 0), 12_345, 74_055, 86_399_987_655),
    ],
)
def test_coarse_unit_times_land_on_the_first_microsecond_of_a_unit(
    state, offset, retry_us, reset_us
):
    now = START + offset
    step = sliding_step(state, now, LARGE.count, WINDOW, 1, UNIT)
    assert step == (False, state, retry_us, 0, reset_us)
    for wait in (retry_us, reset_us):
        assert (now + wait) % UNIT == 0
    t = (now + retry_us) // UNIT
    assert _estimate(state, t, WINDOW) + 1 <= LARGE.count
    assert _estimate(state, t - 1, WINDOW) + 1 > LARGE.count
    assert _estimate(state, (now + reset_us) // UNIT, WINDOW) == 0


def test_coarse_unit_admission_reports_microseconds():
    now = START + 12_345
    allowed, state, retry, remaining, reset = sliding_step(
        (7, 10, 0), now, LARGE.count, WINDOW, 1, UNIT
    )
    assert (allowed, state, retry, remaining) == (True, (7, 11, 0), 0, 999_989)
    assert reset == 2 * WINDOW * UNIT - 12_345


def test_a_coarse_unit_empty_key_is_full_now_whatever_the_microsecond():
    now = START + 12_345
    step = sliding_step((0, 0, 0), now, LARGE.count, WINDOW, 0, UNIT)
    assert step == (True, (7, 0, 0), 0, LARGE.count, 0)


def test_a_state_above_a_lowered_limit_has_none_remaining_not_fewer():
    # Counted under 5 per window, read under 2 (a redeploy lowered the limit): even a read
    # waits until the estimate is back within the limit.
    assert sliding_step((0, 5, 0), 0, 2, 10, 0) == (False, (0, 5, 0), 16, 0, 20)
    assert sliding_step((0, 5, 0), 10, 2, 10, 0) == (False, (0, 5, 0), 6, 0, 10)
    assert _estimate((0, 5, 0), 16, 10) == 2
    assert _estimate((0, 5, 0), 15, 10) > 2
