"""Sliding-window counter arithmetic (pure; exact integers; mirrored in ``ratelimit.lua``).

The state of one key is ``(window, current, previous)``: the index of the fixed window the
counts belong to, the count in that window and the count in the one before. The estimate of
requests in the trailing period weights the previous window by how much of it still overlaps::

    estimate = previous * (W - elapsed) / W + current

A request of ``cost`` passes when ``estimate + cost <= limit``. The comparison is done
multiplied through by ``W`` so that it stays in exact integers, in Python and in Lua alike.
"""

from __future__ import annotations

__all__ = ["EMPTY", "SlidingState", "sliding_step", "sliding_update", "sliding_view"]

SlidingState = tuple[int, int, int]
"""``(window index, count in that window, count in the window before)``."""

EMPTY: SlidingState = (0, 0, 0)


def sliding_step(  # noqa: PLR0917  (positional: keywords cost time per request)
    state: SlidingState, now: int, limit: int, window: int, cost: int, unit: int = 1
) -> tuple[bool, SlidingState, int, int, int]:
    """Try to count ``cost`` requests against ``limit`` per ``window`` units of time.

    One pass, as the Lua script makes it: the verdict, then the figures of the state it
    leaves behind.

    Args:
        state: the stored state (``EMPTY`` for a new key).
        now: the time in microseconds.
        limit: requests per window.
        window: the window length in units of ``unit`` microseconds.
        cost: requests this call counts (0 only reads); must be at most ``limit``.
        unit: the time unit of the arithmetic, in microseconds: 1, or a power of ten more
            that keeps the products of large limits exact in Lua (``Limit.sliding_unit_us``).

    Returns:
        ``(allowed, new_state, retry_after_us, remaining, reset_after_us)``: the state to
        store if every limit of the request allows it (``state`` itself when not allowed),
        how long until this limit would allow it (0 when allowed), and the requests it
        admits and the time until its estimate falls to zero (which is also when the stored
        state may expire), both as of ``new_state``. Both times land exactly on the first
        microsecond of the unit in which the request passes, or the estimate is zero.
    """
    t = now // unit
    index = t // window
    stored, current, previous = state
    if stored != index:  # the counts as seen from window ``index``
        current, previous = (0, current) if stored == index - 1 else (0, 0)
    elapsed = t - index * window
    left = window - elapsed
    if previous * left + (current + cost) * window <= limit * window:
        allowed, retry = True, 0
        current += cost
        state = (index, current, previous)
    elif current + cost <= limit:
        # The previous window's weight is the obstacle: wait until enough of it slid out.
        allowed, retry = False, left - (limit - current - cost) * window // previous
    else:
        # Only the next window can help, once this window's count weighs little enough.
        allowed, retry = False, left + window - (limit - cost) * window // current
    free = limit * window - previous * left - current * window
    remaining = free // window if free > 0 else 0
    if current:
        reset = left + window
    elif previous:
        reset = left
    else:
        reset = 0
    if unit == 1:  # most limits: the times are microseconds already
        return allowed, state, retry, remaining, reset
    # Back to microseconds: from now to the start of unit t + wait (0 stays 0).
    retry_us = (t + retry) * unit - now if retry else 0
    reset_us = (t + reset) * unit - now if reset else 0
    return allowed, state, retry_us, remaining, reset_us


def sliding_update(
    state: SlidingState, now: int, limit: int, window: int, cost: int
) -> tuple[bool, SlidingState, int]:
    """``(allowed, new_state, retry_after_us)`` of :func:`sliding_step` (``window`` in us)."""
    allowed, new, retry, _remaining, _reset = sliding_step(state, now, limit, window, cost)
    return allowed, new, retry


def sliding_view(state: SlidingState, now: int, limit: int, window: int) -> tuple[int, int]:
    """``(remaining, reset_after_us)`` of ``state`` at ``now`` (``window`` in us): counting nothing.

    ``reset_after_us`` is the time until the estimate falls to zero, which is also when the
    stored state may expire.
    """
    _allowed, _new, _retry, remaining, reset = sliding_step(state, now, limit, window, 0)
    return remaining, reset
