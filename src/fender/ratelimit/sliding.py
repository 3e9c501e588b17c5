"""Sliding-window counter arithmetic (pure; integer microseconds; mirrored in ``ratelimit.lua``).

The state of one key is ``(window, current, previous)``: the index of the fixed window the
counts belong to, the count in that window and the count in the one before. The estimate of
requests in the trailing period weights the previous window by how much of it still overlaps::

    estimate = previous * (W - elapsed) / W + current

A request of ``cost`` passes when ``estimate + cost <= limit``. The comparison is done
multiplied through by ``W`` so that it stays in exact integers, in Python and in Lua alike.
"""

from __future__ import annotations

__all__ = ["EMPTY", "SlidingState", "sliding_update", "sliding_view"]

SlidingState = tuple[int, int, int]
"""``(window index, count in that window, count in the window before)``."""

EMPTY: SlidingState = (0, 0, 0)


def _current(state: SlidingState, index: int) -> tuple[int, int]:
    """Return ``(current, previous)`` counts as seen from window ``index``."""
    window, current, previous = state
    if window == index:
        return current, previous
    if window == index - 1:
        return 0, current
    return 0, 0


def sliding_update(
    state: SlidingState, now: int, limit: int, window: int, cost: int
) -> tuple[bool, SlidingState, int]:
    """Try to count ``cost`` requests against ``limit`` per ``window`` microseconds.

    Args:
        state: the stored state (``EMPTY`` for a new key).
        now: the time in microseconds.
        limit: requests per window.
        window: the window length in microseconds.
        cost: requests this call counts; must be at most ``limit``.

    Returns:
        ``(allowed, new_state, retry_after_us)``: the state to store if every limit of the
        request allows it, and, when not allowed, how long until this limit would.
    """
    index = now // window
    current, previous = _current(state, index)
    elapsed = now - index * window
    if previous * (window - elapsed) + (current + cost) * window <= limit * window:
        return True, (index, current + cost, previous), 0
    if current + cost <= limit:
        # The previous window's weight is the obstacle: wait until enough of it slid out.
        return False, state, window - elapsed - (limit - current - cost) * window // previous
    # Only the next window can help, once this window's count weighs little enough.
    return False, state, (window - elapsed) + window - (limit - cost) * window // current


def sliding_view(state: SlidingState, now: int, limit: int, window: int) -> tuple[int, int]:
    """Return ``(remaining, reset_after_us)`` of ``state`` at ``now``.

    ``reset_after_us`` is the time until the estimate falls to zero, which is also when the
    stored state may expire.
    """
    index = now // window
    current, previous = _current(state, index)
    elapsed = now - index * window
    free = limit * window - previous * (window - elapsed) - current * window
    remaining = max(0, free // window)
    if current:
        return remaining, 2 * window - elapsed
    if previous:
        return remaining, window - elapsed
    return remaining, 0
