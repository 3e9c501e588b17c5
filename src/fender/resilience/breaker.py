"""The circuit breaker: configuration, the state machine, and the sync and async shells on top.

The state machine follows resilience4j. It is CLOSED while calls go well, trips to OPEN on
``failure_threshold`` consecutive failures or when the failure rate or the slow-call rate over a
sliding window reaches its threshold, rejects calls while OPEN, and after the recovery timeout
lets a few trial calls through (HALF_OPEN) to decide between CLOSED and OPEN again. Three manual
states override it: FORCED_OPEN rejects everything, DISABLED admits everything and records
nothing, METRICS_ONLY admits everything and records without tripping.

The core is the primitive API -- :meth:`CircuitBreaker.try_acquire`, :meth:`~CircuitBreaker.
on_success`, :meth:`~CircuitBreaker.on_error`, :meth:`~CircuitBreaker.on_result` -- which does no
I/O and reads time only from the injected clock. The decorator, :meth:`~CircuitBreaker.call`,
:meth:`~CircuitBreaker.call_async` and the context managers are thin shells over it; the sync and
async shells differ only by an ``await``.

Concurrency: a lock guards each state update for a few hundred nanoseconds and is never held
while the protected call runs, so concurrent calls through a closed breaker proceed in parallel
(pybreaker serialises them). Transitions are announced (log event, listeners) after the lock is
released, so a listener may read :meth:`CircuitBreaker.snapshot` without deadlocking.

Example:
    >>> from fender._clock import ManualClock
    >>> breaker = CircuitBreaker("redis", BreakerConfig(failure_threshold=2), clock=ManualClock())
    >>> @breaker
    ... def ping() -> str:
    ...     raise ConnectionError("down")
    >>> for _ in range(2):
    ...     try:
    ...         ping()
    ...     except ConnectionError:
    ...         pass
    >>> breaker.state
    <BreakerState.OPEN: 'open'>
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import functools
import inspect
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from types import CoroutineType, TracebackType
from typing import Any, Final, NamedTuple, ParamSpec, TypeVar, cast, final

from fender._clock import Clock, monotonic
from fender.errors import CallNotPermitted, ConfigurationError
from fender.resilience._window import CountWindow, SlidingWindow, TimeWindow

__all__ = [
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "CallEvent",
    "CircuitBreaker",
    "Outcome",
    "Permit",
    "SlidingWindowType",
    "StateTransition",
]

logger = logging.getLogger("fender.resilience")

P = ParamSpec("P")
R = TypeVar("R")

Fallback = Callable[..., Any]
"""Called as ``fallback(exc, *args, **kwargs)`` with the failure or the CallNotPermitted."""


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
        return _GAUGE[self]


# Module constants: attribute access on an enum class costs about 100 ns on CPython 3.11,
# which the per-call path cannot afford.
_CLOSED: Final = BreakerState.CLOSED
_OPEN: Final = BreakerState.OPEN
_HALF_OPEN: Final = BreakerState.HALF_OPEN
_FORCED_OPEN: Final = BreakerState.FORCED_OPEN
_DISABLED: Final = BreakerState.DISABLED
_METRICS_ONLY: Final = BreakerState.METRICS_ONLY

_GAUGE: Final = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
    BreakerState.FORCED_OPEN: 2,
    BreakerState.DISABLED: 0,
    BreakerState.METRICS_ONLY: 0,
}
_ADMIT_ALL: Final = frozenset(
    {BreakerState.CLOSED, BreakerState.DISABLED, BreakerState.METRICS_ONLY}
)


class SlidingWindowType(enum.StrEnum):
    """How the failure and slow-call rates are measured."""

    COUNT_BASED = "count_based"
    """Over the last ``sliding_window_size`` calls."""
    TIME_BASED = "time_based"
    """Over the last ``sliding_window_size`` seconds, in one-second buckets."""


class Outcome(enum.StrEnum):
    """How one call ended, as seen by the breaker (the ``outcome`` label of the call metric)."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"
    """An exception ignored (or not recorded) by the config: counts as neither."""
    REJECTED = "rejected"


_SUCCESS: Final = Outcome.SUCCESS
_FAILURE: Final = Outcome.FAILURE
_IGNORED: Final = Outcome.IGNORED
_REJECTED: Final = Outcome.REJECTED


def _exception_types(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(item, type) and issubclass(item, BaseException) for item in value
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class BreakerConfig:
    """How a circuit breaker trips and recovers; immutable, validated when built.

    Any of the three trip rules can be switched off with ``None``; at least one must stay on.
    Rates are percentages. Durations are seconds.

    Example:
        >>> BreakerConfig(failure_threshold=3, recovery_timeout=10.0).failure_threshold
        3
        >>> BreakerConfig(failure_rate_threshold=150.0)
        Traceback (most recent call last):
        ...
        fender.errors.ConfigurationError: failure_rate_threshold=150.0 is invalid: expected ...
    """

    failure_threshold: int | None = 5
    """Consecutive recorded failures that trip the breaker; ``None`` turns the rule off."""
    failure_rate_threshold: float | None = 50.0
    """Failure percentage over the window that trips it (``>=``); ``None`` turns the rule off."""
    slow_call_rate_threshold: float | None = 100.0
    """Slow-call percentage over the window that trips it (``>=``); ``None`` turns it off."""
    slow_call_duration_threshold: float | None = 60.0
    """A call taking longer than this is slow; ``None`` turns the slow-call rule off."""
    sliding_window_type: SlidingWindowType = SlidingWindowType.TIME_BASED
    """Measure the rates over the last N calls or the last N seconds."""
    sliding_window_size: int = 10
    """N: calls for a count-based window, seconds for a time-based one."""
    minimum_number_of_calls: int = 20
    """Calls the window must hold before a rate can trip; capped at the size of a count window."""
    recovery_timeout: float = 60.0
    """Seconds OPEN before the next call is let through as a trial (HALF_OPEN)."""
    recovery_timeout_multiplier: float = 1.0
    """Growth of the timeout each time a trial fails and the breaker reopens; 1 means none."""
    max_recovery_timeout: float | None = None
    """Cap of the grown timeout (before jitter); ``None`` means ten times ``recovery_timeout``."""
    recovery_jitter: float = 0.1
    """Spread of each timeout, a fraction: it is drawn in ``[t * (1 - j), t * (1 + j)]`` so that
    workers which tripped together do not probe together."""
    permitted_calls_in_half_open: int = 2
    """Trial calls allowed in flight at once in HALF_OPEN; further calls are rejected."""
    success_threshold: int = 2
    """Successful trials that close the breaker; a single failed trial reopens it."""
    half_open_slot_timeout: float = 10.0
    """Seconds after which a trial never reported back (lost) frees its slot."""
    record_exceptions: tuple[type[BaseException], ...] = (Exception,)
    """Exceptions that count as failures. Anything else (``CancelledError``, ``KeyboardInterrupt``)
    counts as neither success nor failure."""
    ignore_exceptions: tuple[type[BaseException], ...] = ()
    """Exceptions that count as neither, even when they match ``record_exceptions``."""
    failure_predicate: Callable[[Any], bool] | None = None
    """``failure_predicate(result)`` true means a returned value counts as a failure."""

    def __post_init__(self) -> None:
        """Raise :class:`~fender.errors.ConfigurationError` naming the first invalid field."""
        self._check_positive_int("failure_threshold", optional=True)
        self._check_percentage("failure_rate_threshold")
        self._check_percentage("slow_call_rate_threshold")
        self._check_positive("slow_call_duration_threshold", optional=True)
        if not isinstance(self.sliding_window_type, SlidingWindowType):
            raise ConfigurationError(
                "sliding_window_type", self.sliding_window_type, "a SlidingWindowType"
            )
        self._check_counts_and_durations()
        for name in ("record_exceptions", "ignore_exceptions"):
            if not _exception_types(getattr(self, name)):
                raise ConfigurationError(name, getattr(self, name), "a tuple of exception classes")
        if self.failure_predicate is not None and not callable(self.failure_predicate):
            raise ConfigurationError(
                "failure_predicate", self.failure_predicate, "a callable taking the result"
            )
        if self.failure_threshold is None and not (self.rate_rule or self.slow_rule):
            raise ConfigurationError(
                "failure_threshold",
                None,
                "a trip rule: failure_threshold, failure_rate_threshold or the slow-call rule "
                "(use CircuitBreaker.disable() for a breaker that never trips)",
            )

    def _check_counts_and_durations(self) -> None:
        for name in (
            "sliding_window_size",
            "minimum_number_of_calls",
            "permitted_calls_in_half_open",
            "success_threshold",
        ):
            self._check_positive_int(name)
        for name in ("recovery_timeout", "half_open_slot_timeout"):
            self._check_positive(name)
        self._check_positive("max_recovery_timeout", optional=True)
        if not _number(self.recovery_timeout_multiplier) or self.recovery_timeout_multiplier < 1:
            raise ConfigurationError(
                "recovery_timeout_multiplier", self.recovery_timeout_multiplier, "a number >= 1"
            )
        if (
            self.max_recovery_timeout is not None
            and self.max_recovery_timeout < self.recovery_timeout
        ):
            raise ConfigurationError(
                "max_recovery_timeout",
                self.max_recovery_timeout,
                f"at least recovery_timeout ({self.recovery_timeout})",
            )
        if not _number(self.recovery_jitter) or not 0 <= self.recovery_jitter < 1:
            raise ConfigurationError(
                "recovery_jitter", self.recovery_jitter, "a fraction in [0, 1)"
            )

    @property
    def rate_rule(self) -> bool:
        """Whether the failure-rate rule is on."""
        return self.failure_rate_threshold is not None

    @property
    def slow_rule(self) -> bool:
        """Whether the slow-call rule is on (it needs both of its thresholds)."""
        return (
            self.slow_call_rate_threshold is not None
            and self.slow_call_duration_threshold is not None
        )

    def _check_positive_int(self, name: str, *, optional: bool = False) -> None:
        value = getattr(self, name)
        if optional and value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            expected = "an integer >= 1" + (" or None" if optional else "")
            raise ConfigurationError(name, value, expected)

    def _check_positive(self, name: str, *, optional: bool = False) -> None:
        value = getattr(self, name)
        if optional and value is None:
            return
        if not _number(value) or value <= 0:
            expected = "a number of seconds > 0" + (" or None" if optional else "")
            raise ConfigurationError(name, value, expected)

    def _check_percentage(self, name: str) -> None:
        value = getattr(self, name)
        if value is not None and (not _number(value) or not 0 < value <= 100):  # noqa: PLR2004  (a percentage)
            raise ConfigurationError(name, value, "a percentage in (0, 100] or None")


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


class _Rejection(CallNotPermitted):
    """A CallNotPermitted built on the rejection hot path: the message is formatted when read.

    The base class formats its message in ``__init__`` (about a microsecond here); a fallback
    that never reads the message should not pay for it on every rejected call. The C-level
    ``__init__`` keeps only ``.args``, ``(name, retry_after)``, which the two attributes read
    (and write, as on the base class): one costs what a plain ``Exception`` costs.
    """

    __slots__ = ()
    __init__ = BaseException.__init__

    @property
    def name(self) -> str:
        """The breaker's name."""
        return cast("str", self.args[0])

    @name.setter
    def name(self, value: str) -> None:
        self.args = (value, *self.args[1:])

    @property
    def retry_after(self) -> float:
        """Seconds until the breaker may admit a call."""
        return cast("float", self.args[1])

    @retry_after.setter
    def retry_after(self, value: float) -> None:
        self.args = (self.args[0], value, *self.args[2:])

    def __str__(self) -> str:
        return str(CallNotPermitted(self.name, self.retry_after))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Rejection, self.args)


class _Entered:
    """One active ``with breaker:`` in the current context; ``outer`` is the one it nests in."""

    __slots__ = ("outer", "permit", "start")

    def __init__(self, permit: Permit, start: float, outer: _Entered | None) -> None:
        self.permit = permit
        self.start = start
        self.outer = outer


# The clock used when nothing needs timing: float() is 0.0, and a C call is cheaper than a
# Python function returning 0.0.
_untimed: Callable[[], float] = float


_DEFAULT: Any = object()


class CircuitBreaker:
    """A named circuit breaker; one object serves sync and async callers.

    Use it as a decorator (on a ``def`` or an ``async def``), through :meth:`call` /
    :meth:`call_async`, as ``with breaker:`` / ``async with breaker:``, or through the primitive
    API (:meth:`try_acquire` then :meth:`on_success` / :meth:`on_error` / :meth:`on_result`).

    Args:
        name: Names the breaker in errors, logs, metrics and the registry.
        config: How it trips and recovers.
        clock: Monotonic seconds; inject :class:`fender._clock.ManualClock` in tests.
        rng: Uniform floats in ``[0, 1)`` for the recovery jitter; inject a fixed one in tests.
        fallback: Called as ``fallback(exc, *args, **kwargs)`` instead of raising when a call is
            rejected (``exc`` is a :class:`~fender.errors.CallNotPermitted`) or fails with a
            recorded exception; its value is returned to the caller (awaited if awaitable in the
            async shells). Ignored exceptions always propagate.

    Example:
        >>> breaker = CircuitBreaker("users-api", fallback=lambda exc, user_id: {"id": user_id})
        >>> @breaker
        ... async def fetch_user(user_id: int) -> dict[str, int]:
        ...     raise TimeoutError
    """

    __slots__ = (
        "__weakref__",
        "_call_listeners",
        "_consecutive",
        "_entered",
        "_failure_limit",
        "_fallback",
        "_generation",
        "_ignore",
        "_jitter",
        "_lock",
        "_lock_acquire",
        "_lock_release",
        "_max_recovery",
        "_min_calls",
        "_multiplier",
        "_now",
        "_open_until",
        "_permit",
        "_predicate",
        "_rate_limit",
        "_record",
        "_recovery",
        "_rng",
        "_slot_timeout",
        "_slots",
        "_slow_limit",
        "_slow_threshold",
        "_state",
        "_timer",
        "_transition_listeners",
        "_trial_successes",
        "_window",
        "config",
        "name",
    )

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = monotonic,
        rng: Callable[[], float] = random.random,
        fallback: Fallback | None = None,
    ) -> None:
        """Build a CLOSED breaker; see the class docstring for the arguments."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError("name", name, "a non-empty string")
        config = BreakerConfig() if config is None else config
        if not isinstance(config, BreakerConfig):
            raise ConfigurationError("config", config, "a BreakerConfig")
        if fallback is not None and not callable(fallback):
            raise ConfigurationError("fallback", fallback, "a callable or None")
        self.name = name
        self.config = config
        self._fallback = fallback
        # The default clock is a Python-level callable around time.monotonic; calling the C
        # function directly saves a frame on every timed call.
        self._now: Callable[[], float] = time.monotonic if clock is monotonic else clock
        self._rng = rng
        self._lock = threading.Lock()
        # Bound methods: `with lock` costs twice as much as acquire/release on CPython 3.11.
        self._lock_acquire = self._lock.acquire
        self._lock_release = self._lock.release
        self._precompute(config)
        self._transition_listeners: tuple[Callable[[StateTransition], object], ...] = ()
        self._call_listeners: tuple[Callable[[CallEvent], object], ...] = ()
        self._entered: contextvars.ContextVar[_Entered | None] = contextvars.ContextVar(
            f"fender_breaker_{name}", default=None
        )
        self._state = _CLOSED
        self._generation = 0
        self._permit: Permit | None = Permit(0, trial=False, acquired_at=self._now())
        self._consecutive = 0
        self._open_until = -math.inf
        self._recovery = float(config.recovery_timeout)
        self._slots: list[Permit] = []
        self._trial_successes = 0

    def _precompute(self, config: BreakerConfig) -> None:
        # Everything the hot path reads is a plain attribute, with "rule off" encoded as a
        # limit that can never be reached, so that the per-call code has no None checks.
        self._failure_limit = (
            config.failure_threshold if config.failure_threshold is not None else math.inf
        )
        self._rate_limit = (
            config.failure_rate_threshold if config.failure_rate_threshold is not None else math.inf
        )
        slow_rule = config.slow_rule
        self._slow_limit = cast("float", config.slow_call_rate_threshold) if slow_rule else math.inf
        self._slow_threshold = (
            cast("float", config.slow_call_duration_threshold) if slow_rule else math.inf
        )
        window: SlidingWindow | None = None
        if config.rate_rule or slow_rule:
            if config.sliding_window_type is SlidingWindowType.TIME_BASED:
                window = TimeWindow(config.sliding_window_size)
            else:
                window = CountWindow(config.sliding_window_size)
        self._window = window
        self._min_calls = (
            min(config.minimum_number_of_calls, config.sliding_window_size)
            if config.sliding_window_type is SlidingWindowType.COUNT_BASED
            else config.minimum_number_of_calls
        )
        # Read the clock around calls only when something needs it: the slow-call rule or the
        # time-based window. Otherwise a closed call costs no clock read at all.
        timed = slow_rule or isinstance(window, TimeWindow)
        self._timer: Callable[[], float] = self._now if timed else _untimed
        self._record = config.record_exceptions
        self._ignore = config.ignore_exceptions
        self._predicate = config.failure_predicate
        self._multiplier = config.recovery_timeout_multiplier
        self._max_recovery = (
            config.max_recovery_timeout
            if config.max_recovery_timeout is not None
            else 10 * config.recovery_timeout
        )
        self._jitter = config.recovery_jitter
        self._slot_timeout = config.half_open_slot_timeout

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"

    # -- primitive API ---------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state (OPEN stays OPEN until a call asks after the timeout)."""
        return self._state

    def try_acquire(self) -> Permit | None:
        """Ask to make one call: a :class:`Permit` if admitted, ``None`` if rejected.

        After an admitted call, report exactly one of :meth:`on_success`, :meth:`on_error` or
        :meth:`on_result`, passing the permit back. A rejection is counted (``rejected``).
        """
        permit = self._permit
        if permit is not None:
            return permit
        decision = self._acquire()
        return decision if isinstance(decision, Permit) else None

    def retry_after(self) -> float:
        """Seconds until the breaker may admit a call; 0 while it admits calls."""
        return self.snapshot().retry_after

    def on_success(self, duration: float = 0.0, permit: Permit | None = None) -> None:
        """Report a call that succeeded after ``duration`` seconds."""
        self._succeeded(permit, duration, self._now() if self._timer is self._now else 0.0)

    def on_result(
        self, result: object, duration: float = 0.0, permit: Permit | None = None
    ) -> None:
        """Report a call that returned ``result``; ``failure_predicate`` decides its outcome."""
        now = self._now() if self._timer is self._now else 0.0
        predicate = self._predicate
        if predicate is not None and predicate(result):
            self._failed(permit, duration, now)
        else:
            self._succeeded(permit, duration, now)

    def on_error(
        self, exc: BaseException, duration: float = 0.0, permit: Permit | None = None
    ) -> bool:
        """Report a call that raised ``exc``; return whether it counted as a failure."""
        return self._errored(
            exc, permit, duration, self._now() if self._timer is self._now else 0.0
        )

    # -- state machine (everything below mutates only under the lock) ----------------------------

    def _acquire(self) -> Permit | float:
        """Admit (a permit) or reject (the seconds to wait) a call when not admitting everyone."""
        now = self._now()
        # Lock-free: _open_until is in the past unless OPEN, and a stale read of it can only
        # delay the first trial by a call.
        wait = self._open_until - now
        if wait > 0.0:
            if self._call_listeners:
                self._emit_call(_REJECTED, 0.0, slow=False)
            return wait
        decision = self._acquire_locked(now)
        if self._call_listeners and not isinstance(decision, Permit):
            self._emit_call(_REJECTED, 0.0, slow=False)
        return decision

    def _acquire_locked(self, now: float) -> Permit | float:
        transition = None
        self._lock_acquire()
        try:
            state = self._state
            if state is _OPEN and self._open_until <= now:
                transition = self._set_state(_HALF_OPEN, now)
                state = _HALF_OPEN
            if state is _HALF_OPEN:
                decision = self._take_slot(now)
            elif state is _OPEN:
                decision = self._open_until - now
            elif state is _FORCED_OPEN:
                # No timeout ends a forced open; the configured one is the honest hint.
                decision = self._recovery
            else:
                decision = cast("Permit", self._permit)
        finally:
            self._lock_release()
        if transition is not None:
            self._announce(transition)
        return decision

    def _take_slot(self, now: float) -> Permit | float:
        slots = self._slots
        timeout = self._slot_timeout
        if slots and now - slots[0].acquired_at >= timeout:
            # Lost trials (never reported back) free their slot instead of wedging HALF_OPEN.
            slots[:] = [slot for slot in slots if now - slot.acquired_at < timeout]
        if len(slots) < self.config.permitted_calls_in_half_open:
            permit = Permit(self._generation, trial=True, acquired_at=now)
            slots.append(permit)
            return permit
        return max(slots[0].acquired_at + timeout - now, 0.0)

    def _free_slot(self, permit: Permit | None) -> None:
        slots = self._slots
        if permit is None:
            # The caller did not pass its permit back: free the oldest slot.
            if slots:
                del slots[0]
        elif permit in slots:
            slots.remove(permit)

    def _succeeded(self, permit: Permit | None, duration: float, now: float) -> None:
        slow = duration > self._slow_threshold
        window = self._window
        if window is None and permit is self._permit and self._state is _CLOSED:
            # Nothing to record but a reset of the consecutive count; when it is already 0 there
            # is nothing to write, and a failure racing with this read is counted either way.
            if self._consecutive:
                self._lock_acquire()
                try:
                    if permit is self._permit:
                        self._consecutive = 0
                finally:
                    self._lock_release()
            if self._call_listeners:
                self._emit_call(_SUCCESS, duration, slow=slow)
            return
        transition = None
        self._lock_acquire()
        try:
            # The common case first and inline: a call admitted by the current CLOSED state.
            if permit is self._permit and self._state is _CLOSED:
                self._consecutive = 0
                if window is not None:
                    # A success can trip only if it brings the window to the minimum number of
                    # calls, is slow, or follows the expiry of older outcomes; otherwise it
                    # cannot raise a rate that the last check found below its threshold.
                    enough = window.calls >= self._min_calls
                    window.record(now, False, slow)  # noqa: FBT003  (hot path, positional)
                    if (slow or not enough or window.expired) and self._rates_trip(window):
                        transition = self._trip(escalate=False)
            else:
                transition = self._succeeded_otherwise(permit, now, slow=slow)
        finally:
            self._lock_release()
        if transition is not None:
            self._announce(transition)
        if self._call_listeners:
            self._emit_call(_SUCCESS, duration, slow=slow)

    def _succeeded_otherwise(
        self, permit: Permit | None, now: float, *, slow: bool
    ) -> StateTransition | None:
        """A success in any case but the common one; called under the lock."""
        if permit is not None and permit.generation != self._generation:
            return None  # admitted by an earlier state: says nothing about this one
        state = self._state
        if state is _CLOSED or state is _METRICS_ONLY:
            self._consecutive = 0
            if self._window is not None:
                self._window.record(now, False, slow)  # noqa: FBT003  (positional, as on the hot path)
                if state is _CLOSED and self._rates_trip(self._window):
                    return self._trip(escalate=False)
        elif state is _HALF_OPEN:
            return self._trial_done(permit, failed=slow)
        # OPEN, FORCED_OPEN, DISABLED learn nothing from a call.
        return None

    def _failed(self, permit: Permit | None, duration: float, now: float) -> None:
        slow = duration > self._slow_threshold
        transition = None
        self._lock_acquire()
        try:
            if permit is None or permit.generation == self._generation:
                state = self._state
                if state is _CLOSED:
                    self._consecutive += 1
                    window = self._window
                    if window is not None:
                        window.record(now, True, slow)  # noqa: FBT003  (hot path, positional)
                    if self._consecutive >= self._failure_limit or (
                        window is not None and self._rates_trip(window)
                    ):
                        transition = self._trip(escalate=False)
                elif state is _HALF_OPEN:
                    transition = self._trial_done(permit, failed=True)
                elif state is _METRICS_ONLY:
                    self._consecutive += 1
                    if self._window is not None:
                        self._window.record(now, True, slow)  # noqa: FBT003
        finally:
            self._lock_release()
        if transition is not None:
            self._announce(transition)
        if self._call_listeners:
            self._emit_call(_FAILURE, duration, slow=slow)

    def _errored(
        self, exc: BaseException, permit: Permit | None, duration: float, now: float
    ) -> bool:
        if isinstance(exc, self._ignore) or not isinstance(exc, self._record):
            self._ignored(permit, duration)
            return False
        self._failed(permit, duration, now)
        return True

    def _ignored(self, permit: Permit | None, duration: float) -> None:
        if self._state is _HALF_OPEN:
            self._lock_acquire()
            try:
                if self._state is _HALF_OPEN and (
                    permit is None or permit.generation == self._generation
                ):
                    self._free_slot(permit)
            finally:
                self._lock_release()
        if self._call_listeners:
            self._emit_call(_IGNORED, duration, slow=False)

    def _rates_trip(self, window: SlidingWindow) -> bool:
        window.expired = False  # the rates are checked now, with whatever has expired
        calls = window.calls
        return calls >= self._min_calls and (
            window.failures * 100 >= self._rate_limit * calls
            or window.slow * 100 >= self._slow_limit * calls
        )

    def _trial_done(self, permit: Permit | None, *, failed: bool) -> StateTransition | None:
        # A slow trial counts as a failed one when the slow-call rule is on: the dependency
        # answering, but too slowly, is not recovered.
        self._free_slot(permit)
        if failed:
            return self._trip(escalate=True)
        self._trial_successes += 1
        if self._trial_successes >= self.config.success_threshold:
            self._recovery = float(self.config.recovery_timeout)
            return self._set_state(_CLOSED, self._now())
        return None

    def _trip(self, *, escalate: bool) -> StateTransition:
        # The clock is read here, not passed in: callers read it only when a time-based window
        # needs it, and a transition is rare enough to afford its own read.
        now = self._now()
        if escalate:
            self._recovery = min(self._recovery * self._multiplier, self._max_recovery)
        jitter = self._jitter
        timeout = self._recovery
        if jitter:
            timeout *= 1.0 + jitter * (2.0 * self._rng() - 1.0)
        self._open_until = now + timeout
        return self._set_state(_OPEN, now, retry_after=timeout)

    def _set_state(
        self, to_state: BreakerState, now: float, *, retry_after: float = 0.0
    ) -> StateTransition:
        from_state = self._state
        self._generation += 1
        self._state = to_state
        if to_state is not _OPEN:
            self._open_until = -math.inf  # so that _acquire's lock-free test needs no state
        if to_state in _ADMIT_ALL:
            self._consecutive = 0
            if self._window is not None:
                self._window.reset()
            self._permit = Permit(self._generation, trial=False, acquired_at=now)
        else:
            self._permit = None
            if to_state is _HALF_OPEN:
                self._slots = []
                self._trial_successes = 0
        return StateTransition(self.name, from_state, to_state, now, retry_after)

    def _manual(self, to_state: BreakerState, *, clear_recovery: bool = False) -> None:
        transition = None
        self._lock_acquire()
        try:
            if clear_recovery:
                self._recovery = float(self.config.recovery_timeout)
            if self._state is not to_state:
                transition = self._set_state(to_state, self._now())
            else:
                self._consecutive = 0
                if self._window is not None:
                    self._window.reset()
        finally:
            self._lock_release()
        if transition is not None:
            self._announce(transition)

    # -- manual control --------------------------------------------------------------------------

    def force_open(self) -> None:
        """Reject every call until another manual transition (FORCED_OPEN)."""
        self._manual(_FORCED_OPEN)

    def disable(self) -> None:
        """Admit every call and record nothing (DISABLED)."""
        self._manual(_DISABLED)

    def metrics_only(self) -> None:
        """Admit every call, record outcomes, never trip (METRICS_ONLY)."""
        self._manual(_METRICS_ONLY)

    def transition_to_closed(self) -> None:
        """Close the breaker and clear its window; the grown timeout is kept."""
        self._manual(_CLOSED)

    def reset(self) -> None:
        """Close the breaker, clear its window and forget any timeout growth."""
        self._manual(_CLOSED, clear_recovery=True)

    # -- observation -----------------------------------------------------------------------------

    def snapshot(self) -> BreakerSnapshot:
        """A consistent view of the state, the window and the time left until a trial."""
        now = self._now()
        self._lock_acquire()
        try:
            window = self._window
            calls = failed = slow = 0
            if window is not None:
                # Also while OPEN: the window then still shows the calls that tripped it.
                window.refresh(now)
                calls, failed, slow = window.calls, window.failures, window.slow
            enough = calls >= self._min_calls and calls > 0
            state = self._state
            in_flight = 0
            if state is _OPEN:
                retry_after = max(self._open_until - now, 0.0)
            elif state is _FORCED_OPEN:
                retry_after = self._recovery
            elif state is _HALF_OPEN:
                live = [slot for slot in self._slots if now - slot.acquired_at < self._slot_timeout]
                in_flight = len(live)
                full = in_flight >= self.config.permitted_calls_in_half_open
                retry_after = live[0].acquired_at + self._slot_timeout - now if full else 0.0
            else:
                retry_after = 0.0
            return BreakerSnapshot(
                name=self.name,
                state=state,
                calls=calls,
                failed_calls=failed,
                slow_calls=slow,
                failure_rate=100.0 * failed / calls if enough else None,
                slow_call_rate=100.0 * slow / calls if enough else None,
                consecutive_failures=self._consecutive,
                half_open_in_flight=in_flight,
                retry_after=retry_after,
                recovery_timeout=self._recovery,
            )
        finally:
            self._lock_release()

    def add_transition_listener(
        self, listener: Callable[[StateTransition], object]
    ) -> Callable[[], None]:
        """Call ``listener(event)`` on every state change; returns a function that unsubscribes.

        Listeners run after the state lock is released. An exception in one is logged
        (``circuit breaker listener failed``) and never reaches the caller or other listeners.
        """
        self._transition_listeners = (*self._transition_listeners, listener)

        def remove() -> None:
            self._transition_listeners = tuple(
                item for item in self._transition_listeners if item is not listener
            )

        return remove

    def add_call_listener(self, listener: Callable[[CallEvent], object]) -> Callable[[], None]:
        """Call ``listener(event)`` after every call outcome, rejections included.

        Same containment as :meth:`add_transition_listener`. With no call listener the hot path
        builds no event at all.
        """
        self._call_listeners = (*self._call_listeners, listener)

        def remove() -> None:
            self._call_listeners = tuple(
                item for item in self._call_listeners if item is not listener
            )

        return remove

    def _announce(self, event: StateTransition) -> None:
        extra: dict[str, object] = {
            "breaker": self.name,
            "from_state": event.from_state.value,
            "to_state": event.to_state.value,
        }
        to_state = event.to_state
        # An outage logs "opened" and "reset to closed"; the probes in between (half-open,
        # a failed trial) are DEBUG, or a breaker probing every 0.5 s writes 4 lines a second.
        if to_state is _OPEN and event.from_state is _HALF_OPEN:
            extra["retry_after"] = round(event.retry_after, 3)
            logger.debug("circuit breaker trial failed, open again", extra=extra)
        elif to_state is _OPEN:
            extra["retry_after"] = round(event.retry_after, 3)
            logger.warning("circuit breaker opened", extra=extra)
        elif to_state is _HALF_OPEN:
            logger.debug("circuit breaker half-open", extra=extra)
        elif to_state is _CLOSED:
            logger.info("circuit breaker reset to closed", extra=extra)
        else:
            logger.warning("circuit breaker %s", to_state.value.replace("_", " "), extra=extra)
        for listener in self._transition_listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("circuit breaker listener failed", extra={"breaker": self.name})

    def _emit_call(self, outcome: Outcome, duration: float, *, slow: bool) -> None:
        event = CallEvent(self.name, outcome, duration, slow)
        for listener in self._call_listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("circuit breaker listener failed", extra={"breaker": self.name})

    # -- shells: decorator, call, context managers -----------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function or a coroutine function with this breaker and its fallback."""
        return self.decorate(fn)

    def decorate(
        self, fn: Callable[P, R], *, fallback: Fallback | None = _DEFAULT
    ) -> Callable[P, R]:
        """Decorate ``fn`` (``def`` or ``async def``), optionally with its own ``fallback``.

        Stack it above a retry decorator, so that the retries run inside the breaker and one
        user call counts once.
        """
        chosen: Fallback | None = self._fallback if fallback is _DEFAULT else fallback
        if inspect.iscoroutinefunction(fn):
            wrapper: Callable[..., Any] = self._guard_async(fn, chosen)
        else:
            wrapper = self._guard(fn, chosen)
        return cast("Callable[P, R]", functools.update_wrapper(wrapper, fn))

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through the breaker (and its fallback)."""
        return cast("R", self._guard(fn, self._fallback)(*args, **kwargs))

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker (and its fallback)."""
        return cast("R", await self._guard_async(fn, self._fallback)(*args, **kwargs))

    # The two guards are the only places where the shells differ, by an ``await`` on the call
    # and on the fallback's value. Each step is a call into the shared core; the steps are
    # written out in a closure (rather than calling a shared helper) to save a frame per call.
    # A rejection while OPEN is the lock-free test of _acquire, written out too: during an
    # outage it is every request's path. Calls and fallbacks without keyword arguments are
    # called without ``**kwargs`` (and a fallback without arguments without ``*args``), which
    # saves copying them into a new dict and tuple per call.

    def _guard(self, fn: Callable[..., Any], fallback: Fallback | None) -> Callable[..., Any]:
        acquire, errored, failed, succeeded = (
            self._acquire,
            self._errored,
            self._failed,
            self._succeeded,
        )
        clock, timer, predicate = self._now, self._timer, self._predicate

        def guarded(*args: Any, **kwargs: Any) -> Any:
            permit = self._permit
            if permit is None:
                wait = self._open_until - clock()
                decision = wait if wait > 0.0 and not self._call_listeners else acquire()
                if type(decision) is not Permit:
                    if fallback is None:
                        raise CallNotPermitted(self.name, decision)
                    rejection = _Rejection(self.name, decision)
                    if kwargs:
                        return fallback(rejection, *args, **kwargs)
                    return fallback(rejection, *args) if args else fallback(rejection)
                permit = decision
            start = timer()
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                end = timer()
                if errored(exc, permit, end - start, end) and fallback is not None:
                    return fallback(exc, *args, **kwargs)
                raise
            end = timer()
            if predicate is not None and predicate(result):
                failed(permit, end - start, end)
            else:
                succeeded(permit, end - start, end)
            return result

        return guarded

    def _guard_async(
        self, fn: Callable[..., Awaitable[Any]], fallback: Fallback | None
    ) -> Callable[..., Awaitable[Any]]:
        acquire, errored, failed, succeeded = (
            self._acquire,
            self._errored,
            self._failed,
            self._succeeded,
        )
        clock, timer, predicate = self._now, self._timer, self._predicate

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            permit = self._permit
            if permit is None:
                wait = self._open_until - clock()
                decision = wait if wait > 0.0 and not self._call_listeners else acquire()
                if type(decision) is not Permit:
                    if fallback is None:
                        raise CallNotPermitted(self.name, decision)
                    rejection = _Rejection(self.name, decision)
                    if kwargs:
                        value = fallback(rejection, *args, **kwargs)
                    else:
                        value = fallback(rejection, *args) if args else fallback(rejection)
                    return (await value) if _is_awaitable(value) else value
                permit = decision
            start = timer()
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except BaseException as exc:
                end = timer()
                if errored(exc, permit, end - start, end) and fallback is not None:
                    value = fallback(exc, *args, **kwargs)
                    return (await value) if _is_awaitable(value) else value
                raise
            end = timer()
            if predicate is not None and predicate(result):
                failed(permit, end - start, end)
            else:
                succeeded(permit, end - start, end)
            return result

        return guarded

    def __enter__(self) -> Permit:
        """Admit the block or raise :class:`~fender.errors.CallNotPermitted`; no fallback here."""
        permit = self._permit
        if permit is None:
            decision = self._acquire()
            if not isinstance(decision, Permit):
                raise CallNotPermitted(self.name, decision)
            permit = decision
        # Per context (thread or task), so that concurrent and nested blocks do not mix.
        entered = self._entered
        entered.set(_Entered(permit, self._timer(), entered.get()))
        return permit

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Report the block's outcome; never suppresses its exception."""
        frame = self._entered.get()
        if frame is None:
            raise RuntimeError(f"circuit breaker {self.name!r} exited without entering")
        self._entered.set(frame.outer)
        end = self._timer()
        if exc is None:
            self._succeeded(frame.permit, end - frame.start, end)
        else:
            self._errored(exc, frame.permit, end - frame.start, end)

    async def __aenter__(self) -> Permit:
        """Same as ``with``: admitting a call does no I/O."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Same as ``with``."""
        self.__exit__(exc_type, exc, traceback)


# What a sync fallback mostly returns; no value of these types is awaitable.
_PLAIN: Final = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})


def _is_awaitable(value: object) -> bool:
    """``inspect.isawaitable(value)``, answered without it for coroutines and plain values.

    ``inspect.isawaitable`` costs about 300 ns on a value that is not awaitable (an ABC check),
    as much as the rest of a rejection. Anything but a coroutine or a plain value still goes
    through it (not through ``hasattr``, which would run a user's ``__getattr__``).
    """
    kind = type(value)
    return kind is CoroutineType or (kind not in _PLAIN and inspect.isawaitable(value))
