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

from fender.ratelimit._policy import (
    Algorithm,
    Decision,
    Limit,
    LimitStatus,
    RateLimitPolicy,
    one_limit_decision,
)
from fender.ratelimit._sliding import EMPTY, SlidingState, sliding_step

__all__ = [
    "Cell",
    "State",
    "Step",
    "cells_for",
    "check_cost",
    "decide_one",
    "evaluate",
    "evaluate_one",
    "gcra_step",
    "gcra_update",
    "gcra_view",
    "impossible",
    "initial_state",
]

State = int | SlidingState
"""A stored value: the TAT (GCRA; 0 for a new key) or a sliding-window triple."""

Cell = tuple[str, str, Limit]
"""One limit under one key: ``(storage key, header name, limit)``."""

Step = tuple[bool, State, int, int, int]
"""What one limit makes of one request: ``(allowed, new_state, retry_after_us, remaining,
reset_after_us)``, as :func:`gcra_step` and :func:`sliding_step` return it."""

_US = 1_000_000
# A module constant: looking a member up on the Enum class costs ~0.1 us per request.
_GCRA = Algorithm.GCRA


def gcra_step(
    tat: int, now: int, emission: int, tolerance: int, cost: int
) -> tuple[bool, int, int, int, int]:
    """Try to count ``cost`` requests on a key whose stored TAT is ``tat`` (0 when new).

    One pass, as the Lua script makes it: the verdict, then the figures of the TAT it
    leaves behind.

    Returns:
        ``(allowed, new_tat, retry_after_us, remaining, reset_after_us)``: ``new_tat`` is
        the value to store if every limit of the request allows it, ``retry_after_us`` is 0
        when allowed; ``remaining`` and ``reset_after_us`` (the time until the key is full
        again, which is its expiry) are those of ``new_tat``.
    """
    tat = now if tat < now else tat  # noqa: FURB136  (max() costs 0.1 us more per request)
    new_tat = tat + cost * emission
    retry = new_tat - tolerance - now
    if retry > 0:
        reset = tat - now
        return False, tat, retry, (tolerance - reset) // emission if reset < tolerance else 0, reset
    reset = new_tat - now
    return True, new_tat, 0, (tolerance - reset) // emission, reset


def gcra_update(
    tat: int, now: int, emission: int, tolerance: int, cost: int
) -> tuple[bool, int, int]:
    """``(allowed, new_tat, retry_after_us)`` of :func:`gcra_step`."""
    allowed, new_tat, retry, _remaining, _reset = gcra_step(tat, now, emission, tolerance, cost)
    return allowed, new_tat, retry


def gcra_view(tat: int, now: int, emission: int, tolerance: int) -> tuple[int, int]:
    """Return ``(remaining, reset_after_us)`` for a stored TAT at ``now``: a step counting nothing.

    ``reset_after_us`` is the time until the key is full again, which is its expiry.
    """
    _allowed, _new, _retry, remaining, reset = gcra_step(tat, now, emission, tolerance, 0)
    return remaining, reset


def _step(state: State, now: int, limit: Limit, cost: int, gcra: bool) -> Step:  # noqa: FBT001
    # The ignores stand for cast(), which would be a function call per limit and request.
    if gcra:
        return gcra_step(
            state,  # type: ignore[arg-type]
            now,
            limit.emission_us,
            limit.tolerance_us,
            cost,
        )
    return sliding_step(
        state,  # type: ignore[arg-type]
        now,
        limit.count,
        limit.sliding_window,
        cost,
        limit.sliding_unit_us,
    )


def cells_for(items: Iterable[tuple[str, RateLimitPolicy]], algorithm: Algorithm) -> list[Cell]:
    """Expand ``(key, policy)`` pairs into one cell per limit, with its storage key.

    The storage key is the key plus the limit's suffix, ``:<g|s><period>`` (see
    :attr:`RateLimitPolicy.cells`).
    """
    return [
        (key + suffix, name, limit)
        for key, policy in items
        for suffix, name, limit in policy.cells[algorithm]
    ]


def check_cost(cost: int) -> None:
    """Reject a cost that is not a non-negative integer (a programming error)."""
    if cost.__class__ is int and cost >= 0:  # every request: spare it the isinstance calls
        return
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


def _exceeded(name: str, limit: Limit) -> str:
    return f"rate limit {name!r} ({limit}) exceeded"


def decide_one(  # noqa: PLR0917  (positional: keywords cost time per request)
    key: str, name: str, limit: Limit, state: State, now: int, cost: int, algorithm: Algorithm
) -> tuple[Decision, State, int]:
    """:func:`evaluate` for one limit, flat: ``(decision, new_state, ttl_us)``.

    Store ``new_state`` for ``ttl_us`` microseconds when ``ttl_us > 0``; it is 0 after a
    rejection (nothing is counted) and for a state already full again (nothing worth storing).
    Most requests face one limit; this path keeps them cheap (a property test holds it equal
    to the general one).
    """
    new: State
    # The ignores below stand for cast(), which would be a function call per request.
    if algorithm is _GCRA:
        if cost > limit.burst:
            return _never(key, name, limit, cost, algorithm), state, 0
        ok, new, retry, remaining, reset = gcra_step(
            state,  # type: ignore[arg-type]
            now,
            limit.emission_us,
            limit.tolerance_us,
            cost,
        )
    else:
        if cost > limit.count:
            return _never(key, name, limit, cost, algorithm), state, 0
        ok, new, retry, remaining, reset = sliding_step(
            state,  # type: ignore[arg-type]
            now,
            limit.count,
            limit.sliding_window,
            cost,
            limit.sliding_unit_us,
        )
    if ok:
        return one_limit_decision(limit, name, key, ok, remaining, reset / _US, 0.0, ""), new, reset
    reason = _exceeded(name, limit)
    decision = one_limit_decision(limit, name, key, ok, remaining, reset / _US, retry / _US, reason)
    return decision, state, 0


def evaluate_one(
    cell: Cell, state: State, now: int, cost: int, algorithm: Algorithm
) -> tuple[Decision, tuple[State, int] | None]:
    """:func:`evaluate` for a single limit; ``(decision, write)`` with ``write`` as there."""
    decision, new, ttl = decide_one(*cell, state, now, cost, algorithm)
    return decision, ((new, ttl) if decision.allowed else None)


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
        decision, new, ttl = decide_one(*cells[0], states[0], now, cost, algorithm)
        return decision, ([(new, ttl)] if decision.allowed else None)
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
    steps: list[Step] = []
    allowed = True
    for (_key, _name, limit), state in zip(cells, states, strict=True):
        step = _step(state, now, limit, cost, gcra)
        allowed = allowed and step[0]
        steps.append(step)
    writes: list[tuple[State, int]] | None = [] if allowed else None
    statuses = []
    binding: LimitStatus | None = None
    rank: tuple[int, int] = (0, 0)
    for (key, name, limit), state, step in zip(cells, states, steps, strict=True):
        ok, new, retry, remaining, reset = step
        if ok and not allowed:
            # Report what storage holds after the decision: the rejection changed nothing,
            # so this limit shows the state it had, not the one it would have counted.
            _, _, _, remaining, reset = _step(state, now, limit, 0, gcra)
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
        "" if allowed else _exceeded(binding.name, binding.limit),
        tuple(statuses),
    )
    return decision, writes
