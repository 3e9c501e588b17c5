"""What a circuit breaker tells: call outcomes, state transitions, snapshots; its listeners.

Transitions are logged here and handed to the transition listeners; a listener that raises is
logged and never reaches the caller or the other listeners.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
from collections.abc import Callable
from typing import Final, NamedTuple

from fender.resilience._states import CLOSED, HALF_OPEN, OPEN, BreakerState

__all__ = [
    "FAILURE",
    "IGNORED",
    "REJECTED",
    "SUCCESS",
    "BreakerSnapshot",
    "CallEvent",
    "Outcome",
    "Publisher",
    "StateTransition",
    "announce",
    "logger",
]

logger = logging.getLogger("fender.resilience")


class Outcome(enum.StrEnum):
    """How one call ended, as seen by the breaker (the ``outcome`` label of the call metric)."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"
    """An exception ignored (or not recorded) by the config: counts as neither."""
    REJECTED = "rejected"


SUCCESS: Final = Outcome.SUCCESS
FAILURE: Final = Outcome.FAILURE
IGNORED: Final = Outcome.IGNORED
REJECTED: Final = Outcome.REJECTED


@dataclasses.dataclass(frozen=True, slots=True)
class StateTransition:
    """A breaker changed state; ``retry_after`` is the OPEN timeout when it opened, else 0."""

    name: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    retry_after: float = 0.0


class CallEvent(NamedTuple):
    """One call's outcome as the breaker saw it (for metrics); ``duration`` 0 when not timed.

    A named tuple rather than a frozen dataclass: one is built per call when a call listener is
    attached, and a tuple builds several times faster.
    """

    name: str
    outcome: Outcome
    duration: float
    slow: bool


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSnapshot:
    """A consistent view of one breaker for ``/circuit-breaker`` and ``/status``."""

    name: str
    state: BreakerState
    calls: int
    """Calls in the sliding window (0 when no rate rule is on); while OPEN or HALF_OPEN, the
    window as it was when the breaker tripped (minus what has since slid out of a time window)."""
    failed_calls: int
    slow_calls: int
    failure_rate: float | None
    """Percentage; ``None`` until the window holds ``minimum_number_of_calls``."""
    slow_call_rate: float | None
    consecutive_failures: int
    half_open_in_flight: int
    retry_after: float
    """Seconds until a call may be admitted: 0 when admitting, the timeout left when OPEN."""
    recovery_timeout: float
    """The current (possibly grown) OPEN timeout, before jitter."""

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready values."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def announce(
    event: StateTransition, listeners: tuple[Callable[[StateTransition], object], ...]
) -> None:
    """Log a transition (WARNING when it opens, INFO when it closes) and tell the listeners."""
    extra: dict[str, object] = {
        "breaker": event.name,
        "from_state": event.from_state.value,
        "to_state": event.to_state.value,
    }
    to_state = event.to_state
    # An outage logs "opened" and "reset to closed"; the probes in between (half-open,
    # a failed trial) are DEBUG, or a breaker probing every 0.5 s writes 4 lines a second.
    if to_state is OPEN and event.from_state is HALF_OPEN:
        extra["retry_after"] = round(event.retry_after, 3)
        logger.debug("circuit breaker trial failed, open again", extra=extra)
    elif to_state is OPEN:
        extra["retry_after"] = round(event.retry_after, 3)
        logger.warning("circuit breaker opened", extra=extra)
    elif to_state is HALF_OPEN:
        logger.debug("circuit breaker half-open", extra=extra)
    elif to_state is CLOSED:
        logger.info("circuit breaker reset to closed", extra=extra)
    else:
        logger.warning("circuit breaker %s", to_state.value.replace("_", " "), extra=extra)
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            logger.exception("circuit breaker listener failed", extra={"breaker": event.name})


_SWAPPING = threading.RLock()


def _swap(
    publisher: Publisher, attr: str, change: Callable[[tuple[object, ...]], tuple[object, ...]]
) -> None:
    """Replace a listener tuple with ``change(tuple)``, again if it changed meanwhile.

    Building the new tuple allocates, and an allocation may run the garbage collector, whose
    finalizers (a dropped app unsubscribing) change the same tuple on this thread: storing the
    tuple built from the old one would bring a removed listener back. So the store happens
    only if nothing changed since the read. The lock is reentrant for those finalizers, and
    serialises threads.
    """
    with _SWAPPING:
        while True:
            old = getattr(publisher, attr)
            new = change(old)
            if getattr(publisher, attr) is old:
                setattr(publisher, attr, new)
                return


def _without(listener: object) -> Callable[[tuple[object, ...]], tuple[object, ...]]:
    return lambda old: tuple(item for item in old if item is not listener)


class Publisher:
    """The listeners of one named breaker: who hears its transitions and its call outcomes."""

    __slots__ = ("__weakref__", "_call_listeners", "_transition_listeners", "name")

    def __init__(self, name: str) -> None:
        """Start with no listener."""
        self.name = name
        self._transition_listeners: tuple[Callable[[StateTransition], object], ...] = ()
        self._call_listeners: tuple[Callable[[CallEvent], object], ...] = ()

    def add_transition_listener(
        self, listener: Callable[[StateTransition], object]
    ) -> Callable[[], None]:
        """Call ``listener(event)`` on every state change; returns a function that unsubscribes.

        Listeners run after the state lock is released. An exception in one is logged
        (``circuit breaker listener failed``) and never reaches the caller or other listeners.
        """
        _swap(self, "_transition_listeners", lambda old: (*old, listener))
        return lambda: _swap(self, "_transition_listeners", _without(listener))

    def add_call_listener(self, listener: Callable[[CallEvent], object]) -> Callable[[], None]:
        """Call ``listener(event)`` after every call outcome, rejections included.

        Same containment as :meth:`add_transition_listener`. With no call listener the hot path
        builds no event at all.
        """
        _swap(self, "_call_listeners", lambda old: (*old, listener))
        return lambda: _swap(self, "_call_listeners", _without(listener))

    def _emit_call(self, outcome: Outcome, duration: float, *, slow: bool) -> None:
        event = CallEvent(self.name, outcome, duration, slow)
        for listener in self._call_listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("circuit breaker listener failed", extra={"breaker": self.name})
