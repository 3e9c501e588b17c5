"""The rate-limit arithmetic: GCRA, and the decision over several limits (pure, no I/O).

Everything here works on integer microseconds with an injected ``now``, so that the in-memory
limiter (which calls these functions) and the Redis Lua script (which mirrors them line by
line in ``ratelimit.lua``) reach the same decisions from the same state. Lua numbers are
doubles; the limits are validated so that every quantity stays an exact integer below 2**53.

GCRA keeps one value per key, the theoretical arrival time (TAT) of the next request at the
sustained rate. With emission interval ``T = period / count`` and tolerance ``tau = burst * T``
a request of ``cost`` passes when ``max(TAT, now) + cost * T - tau <= now``; passing moves
the TAT to ``max(TAT, now) + cost * T``. A key is full again (and may expire) at its TAT.

Example:
    >>> gcra_update(0, now=10_000_000, emission=1_000_000, tolerance=2_000_000, cost=1)
    (True, 11000000, 0)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from fender.ratelimit.policy import Algorithm, Decision, Limit, LimitStatus, RateLimitPolicy
from fender.ratelimit.sliding import EMPTY, SlidingState, sliding_update, sliding_view

__all__ = [
    "Cell",
    "State",
    "cells_for",
    "check_cost",
    "evaluate",
    "evaluate_one",
    "gcra_update",
    "gcra_view",
    "impossible",
    "initial_state",
]

State = int | SlidingState
"""A stored value: the TAT (GCRA; 0 for a new key) or a sliding-window triple."""

Cell = tuple[str, str, Limit]
"""One limit under one key: ``(storage key, header name, limit)``."""

_US = 1_000_000
# A module constant: looking a member up on the Enum class costs ~0.1 us per request.
_GCRA = Algorithm.GCRA


def gcra_update(
    tat: int, now: int, emission: int, tolerance: int, cost: int
) -> tuple[bool, int, int]:
    """Try to count ``cost`` requests on a key whose stored TAT is ``tat`` (0 when new).

    Returns:
        ``(allowed, new_tat, retry_after_us)``; ``new_tat`` is the value to store if every
        limit of the request allows it, ``retry_after_us`` is 0 when allowed.
    """
    tat = max(tat, now)
    new_tat = tat + cost * emission
    allow_at = new_tat - tolerance
    if allow_at > now:
        return False, tat, allow_at - now
    return True, new_tat, 0


def gcra_view(tat: int, now: int, emission: int, tolerance: int) -> tuple[int, int]:
    """Return ``(remaining, reset_after_us)`` for a stored TAT at ``now``.

    ``reset_after_us`` is the time until the key is full again, which is its expiry.
    """
    reset = tat - now if tat > now else 0
    return max(0, (tolerance - reset) // emission), reset


def _sliding_step(
    state: SlidingState, now: int, limit: Limit, cost: int
) -> tuple[bool, SlidingState, int]:
    """:func:`sliding_update` in the limit's time unit; the retry time back in microseconds.

    Waiting the returned time lands exactly on the first unit in which the request passes.
    """
    unit = limit.sliding_unit_us
    t = now // unit
    ok, new, retry = sliding_update(state, t, limit.count, limit.period_us // unit, cost)
    return ok, new, ((t + retry) * unit - now if retry else 0)


def _sliding_view(state: SlidingState, now: int, limit: Limit) -> tuple[int, int]:
    unit = limit.sliding_unit_us
    t = now // unit
    remaining, reset = sliding_view(state, t, limit.count, limit.period_us // unit)
    return remaining, ((t + reset) * unit - now if reset else 0)


def cells_for(items: Iterable[tuple[str, RateLimitPolicy]], algorithm: Algorithm) -> list[Cell]:
    """Expand ``(key, policy)`` pairs into one cell per limit, with its storage key.

    The storage key is ``key:<g|s><period>``: the letter keeps GCRA and sliding-window
    state apart, and the period keeps the limits of one policy apart.
    """
    letter = "g" if algorithm is _GCRA else "s"
    return [
        (f"{key}:{letter}{limit.period}", name, limit)
        for key, policy in items
        for name, limit in zip(policy.item_names, policy.limits, strict=True)
    ]


def check_cost(cost: int) -> None:
    """Reject a cost that is not a non-negative integer (a programming error)."""
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
        raise ValueError(f"cost must be an integer >= 0, not {cost!r}")


def initial_state(algorithm: Algorithm) -> State:
    """The state of a key that holds nothing."""
    return 0 if algorithm is _GCRA else EMPTY


def impossible(cells: Sequence[Cell], cost: int, algorithm: Algorithm) -> Decision | None:
    """Reject up front a cost no limit's burst can ever hold, without touching storage.

    Waiting cannot help such a request, so it gets a reason and no ``retry_after`` instead of
    an endless wait. Returns None when every limit could admit ``cost`` at some point.
    """
    for key, name, limit in cells:
        if cost > limit.capacity(algorithm):
            return _never(key, name, limit, cost, algorithm)
    return None


def _never(key: str, name: str, limit: Limit, cost: int, algorithm: Algorithm) -> Decision:
    capacity = limit.capacity(algorithm)
    return Decision(
        allowed=False,
        limit=limit.count,
        window=limit.period,
        remaining=0,
        reset_after=0.0,
        retry_after=None,
        policy=name,
        key=key,
        reason=(
            f"cost {cost} exceeds the burst {capacity} of {name!r} ({limit});"
            " it can never be admitted"
        ),
    )


def evaluate_one(
    cell: Cell, state: State, now: int, cost: int, algorithm: Algorithm
) -> tuple[Decision, tuple[State, int] | None]:
    """:func:`evaluate` for a single limit: the same arithmetic with less bookkeeping.

    Most requests face one limit; this path keeps them cheap (a property test holds it equal
    to the general one). Returns ``(decision, write)`` with ``write`` as in :func:`evaluate`.
    """
    key, name, limit = cell
    new: State
    if algorithm is _GCRA:
        if cost > limit.burst:
            return _never(key, name, limit, cost, algorithm), None
        a, b = limit.emission_us, limit.tolerance_us
        ok, new, retry = gcra_update(cast("int", state), now, a, b, cost)
        remaining, reset = gcra_view(new, now, a, b)
    else:
        if cost > limit.count:
            return _never(key, name, limit, cost, algorithm), None
        ok, sliding, retry = _sliding_step(cast("SlidingState", state), now, limit, cost)
        remaining, reset = _sliding_view(sliding, now, limit)
        new = sliding
    reset_after = reset / _US
    retry_after = retry / _US
    decision = Decision(
        ok,
        limit.count,
        limit.period,
        remaining,
        reset_after,
        retry_after,
        name,
        key,
        "" if ok else f"rate limit {name!r} ({limit}) exceeded",
        (LimitStatus(key, name, limit, ok, remaining, reset_after, retry_after),),
    )
    return decision, ((new, reset) if ok else None)


def evaluate(
    cells: Sequence[Cell],
    states: Sequence[State],
    now: int,
    cost: int,
    algorithm: Algorithm,
) -> tuple[Decision, list[tuple[State, int]] | None]:
    """Decide one request over every cell: all must allow, or nothing is counted.

    Args:
        cells: the limits that apply, each under its storage key.
        states: the stored state of each cell (``initial_state`` when absent).
        now: the time in microseconds.
        cost: requests this call counts (0 reads without counting).
        algorithm: GCRA or the sliding window.

    Returns:
        ``(decision, writes)``: ``writes`` holds, per cell, the state to store and its
        time to live in microseconds (0: nothing worth storing); it is None when the request
        is rejected, so that a rejection consumes from no limit. A cost larger than a
        limit's burst is rejected before any arithmetic, with a reason and no retry time.
    """
    if len(cells) == 1:
        decision, write = evaluate_one(cells[0], states[0], now, cost, algorithm)
        return decision, (None if write is None else [write])
    return _evaluate_many(cells, states, now, cost, algorithm)


def _evaluate_many(
    cells: Sequence[Cell],
    states: Sequence[State],
    now: int,
    cost: int,
    algorithm: Algorithm,
) -> tuple[Decision, list[tuple[State, int]] | None]:
    gcra = algorithm is _GCRA
    for key, name, limit in cells:
        if cost > (limit.burst if gcra else limit.count):
            return _never(key, name, limit, cost, algorithm), None
    allowed = True
    steps: list[tuple[State, int]] = []
    for (_key, _name, limit), state in zip(cells, states, strict=True):
        new: State
        if gcra:
            ok, new, retry = gcra_update(
                cast("int", state), now, limit.emission_us, limit.tolerance_us, cost
            )
        else:
            ok, new, retry = _sliding_step(cast("SlidingState", state), now, limit, cost)
        allowed = allowed and ok
        steps.append((new, retry))
    writes: list[tuple[State, int]] | None = [] if allowed else None
    statuses = []
    binding: LimitStatus | None = None
    rank: tuple[int, int] = (0, 0)
    for (key, name, limit), state, (new, retry) in zip(cells, states, steps, strict=True):
        # Report what storage holds after the decision: a rejection changed nothing.
        shown = new if allowed else state
        if gcra:
            remaining, reset = gcra_view(
                cast("int", shown), now, limit.emission_us, limit.tolerance_us
            )
        else:
            remaining, reset = _sliding_view(cast("SlidingState", shown), now, limit)
        status = LimitStatus(key, name, limit, retry == 0, remaining, reset / _US, retry / _US)
        statuses.append(status)
        if writes is not None:
            writes.append((new, reset))
        # Admitted: the binding limit is the one closest to running out (then the slowest
        # to refill). Rejected: the one that needs the longest wait.
        this = (remaining, -reset) if allowed else (-retry, 0)
        if binding is None or this < rank:
            binding, rank = status, this
    if binding is None:
        raise ValueError("a decision needs at least one limit")
    decision = Decision(
        allowed,
        binding.limit.count,
        binding.limit.period,
        binding.remaining,
        binding.reset_after,
        binding.retry_after,
        binding.name,
        binding.key,
        "" if allowed else f"rate limit {binding.name!r} ({binding.limit}) exceeded",
        tuple(statuses),
    )
    return decision, writes
