"""The states of a circuit breaker, their table, and the permit that ties a call to a state.

The table says, for each state, the value of the ``circuit_breaker_state`` gauge, whether the
state admits every call with a standing permit, and which states the machine moves to from it by
itself. Manual control (:data:`MANUAL_STATES`) reaches its four states from any state.
"""

from __future__ import annotations

import enum
from typing import Final, NamedTuple, final

__all__ = [
    "ADMIT_ALL",
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "MANUAL_STATES",
    "METRICS_ONLY",
    "OPEN",
    "STATES",
    "BreakerState",
    "Permit",
    "StateRule",
]


class BreakerState(enum.StrEnum):
    """The states of a circuit breaker; the last three are set only by hand."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"

    @property
    def gauge(self) -> int:
        """The value of the ``circuit_breaker_state`` gauge: 0 closed, 1 half-open, 2 open.

        Forced open reads as open; disabled and metrics-only admit every call, so read as closed.
        """
        return STATES[self].gauge


class StateRule(NamedTuple):
    """One row of the state table."""

    gauge: int
    """The value of the ``circuit_breaker_state`` gauge."""
    admits_all: bool
    """Every call is admitted with the state's standing permit, without asking the machine."""
    next_states: frozenset[BreakerState]
    """The states the machine moves to from this one by itself (manual control aside)."""


# Module constants: attribute access on an enum class costs about 100 ns on CPython 3.11,
# which the per-call path cannot afford.
CLOSED: Final = BreakerState.CLOSED
OPEN: Final = BreakerState.OPEN
HALF_OPEN: Final = BreakerState.HALF_OPEN
FORCED_OPEN: Final = BreakerState.FORCED_OPEN
DISABLED: Final = BreakerState.DISABLED
METRICS_ONLY: Final = BreakerState.METRICS_ONLY

_NONE: Final[frozenset[BreakerState]] = frozenset()

STATES: Final[dict[BreakerState, StateRule]] = {
    # CLOSED trips on its rules; OPEN lets a trial through once its timeout has passed; the
    # trials of HALF_OPEN close it (enough successes) or open it again (one failure).
    CLOSED: StateRule(gauge=0, admits_all=True, next_states=frozenset({OPEN})),
    OPEN: StateRule(gauge=2, admits_all=False, next_states=frozenset({HALF_OPEN})),
    HALF_OPEN: StateRule(gauge=1, admits_all=False, next_states=frozenset({CLOSED, OPEN})),
    # The manual states stay until another manual transition.
    FORCED_OPEN: StateRule(gauge=2, admits_all=False, next_states=_NONE),
    DISABLED: StateRule(gauge=0, admits_all=True, next_states=_NONE),
    METRICS_ONLY: StateRule(gauge=0, admits_all=True, next_states=_NONE),
}
"""The state table: gauge value, standing permit, and the transitions the machine makes."""

ADMIT_ALL: Final = frozenset(state for state, rule in STATES.items() if rule.admits_all)
"""The states with a standing permit."""

MANUAL_STATES: Final = frozenset({CLOSED, FORCED_OPEN, DISABLED, METRICS_ONLY})
"""The states manual control sets, from any state."""


@final  # never subclassed, so the shells may test ``type(x) is Permit`` (cheaper than isinstance)
class Permit:
    """Permission for one call, from :meth:`CircuitBreaker.try_acquire`; hand it back on report.

    It ties the outcome to the state that admitted the call: the outcome of a call admitted
    before a transition says nothing about the new state and is not counted against it.
    """

    __slots__ = ("acquired_at", "generation", "trial")

    def __init__(self, generation: int, *, trial: bool, acquired_at: float) -> None:
        """Admit a call in state ``generation``; ``trial`` for a HALF_OPEN slot."""
        self.generation = generation
        self.trial = trial
        self.acquired_at = acquired_at

    def __repr__(self) -> str:
        kind = "trial" if self.trial else "call"
        return f"Permit({kind}, generation={self.generation})"
