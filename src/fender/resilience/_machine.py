"""The circuit breaker's state machine: admission, outcomes, transitions, manual control.

It follows resilience4j. It is CLOSED while calls go well, trips to OPEN on
``failure_threshold`` consecutive failures or when the failure rate or the slow-call rate over a
sliding window reaches its threshold, rejects calls while OPEN, and after the recovery timeout
lets a few trial calls through (HALF_OPEN, see :mod:`fender.resilience._half_open`) to decide
between CLOSED and OPEN again. Three manual states override it: FORCED_OPEN rejects everything,
DISABLED admits everything and records nothing, METRICS_ONLY admits everything and records
without tripping. :data:`fender.resilience._states.STATES` is the table of the states.

Its API is the primitive one -- :meth:`~BreakerMachine.try_acquire`,
:meth:`~BreakerMachine.on_success`, :meth:`~BreakerMachine.on_error`,
:meth:`~BreakerMachine.on_result` -- which does no I/O and reads time only from the injected
clock; :class:`~fender.resilience.CircuitBreaker` adds the shells on top.

Concurrency: a lock guards each state update for a few hundred nanoseconds and is never held
while the protected call runs, so concurrent calls through a closed breaker proceed in parallel
(pybreaker serialises them). Transitions are announced (log event, listeners) after the lock is
released, so a listener may read :meth:`~BreakerMachine.snapshot` without deadlocking.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import cast

from fender._clock import Clock, monotonic
from fender.resilience._config import BreakerConfig, SlidingWindowType
from fender.resilience._events import (
    FAILURE,
    IGNORED,
    REJECTED,
    SUCCESS,
    BreakerSnapshot,
    Publisher,
    StateTransition,
    announce,
)
from fender.resilience._half_open import TrialSlots
from fender.resilience._states import (
    ADMIT_ALL,
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    METRICS_ONLY,
    OPEN,
    BreakerState,
    Permit,
)
from fender.resilience._window import CountWindow, SlidingWindow, TimeWindow

__all__ = ["BreakerMachine"]

# The clock used when nothing needs timing: float() is 0.0, and a C call is cheaper than a
# Python function returning 0.0.
_untimed: Callable[[], float] = float


class BreakerMachine(Publisher):
    """The state machine of a named circuit breaker, driven through the primitive API.

    :class:`~fender.resilience.CircuitBreaker` is this machine with its shells (decorator, call,
    context managers); build that one.
    """

    __slots__ = (
        "_consecutive",
        "_failure_limit",
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
        "_slow_limit",
        "_slow_threshold",
        "_state",
        "_timer",
        "_trials",
        "_window",
        "config",
    )

    def __init__(
        self, name: str, config: BreakerConfig, *, clock: Clock, rng: Callable[[], float]
    ) -> None:
        """Build a CLOSED machine; ``name`` and ``config`` are already validated."""
        super().__init__(name)
        self.config = config
        # The default clock is a Python-level callable around time.monotonic; calling the C
        # function directly saves a frame on every timed call.
        self._now: Callable[[], float] = time.monotonic if clock is monotonic else clock
        self._rng = rng
        self._lock = threading.Lock()
        # Bound methods: `with lock` costs twice as much as acquire/release on CPython 3.11.
        self._lock_acquire = self._lock.acquire
        self._lock_release = self._lock.release
        self._precompute(config)
        self._state = CLOSED
        self._generation = 0
        self._permit: Permit | None = Permit(0, trial=False, acquired_at=self._now())
        self._consecutive = 0
        self._open_until = -math.inf
        self._recovery = float(config.recovery_timeout)
        self._trials = TrialSlots(
            limit=config.permitted_calls_in_half_open,
            needed=config.success_threshold,
            timeout=config.half_open_slot_timeout,
        )

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
                self._emit_call(REJECTED, 0.0, slow=False)
            return wait
        decision = self._acquire_locked(now)
        if self._call_listeners and not isinstance(decision, Permit):
            self._emit_call(REJECTED, 0.0, slow=False)
        return decision

    def _acquire_locked(self, now: float) -> Permit | float:
        transition = None
        self._lock_acquire()
        try:
            state = self._state
            if state is OPEN and self._open_until <= now:
                transition = self._set_state(HALF_OPEN, now)
                state = HALF_OPEN
            if state is HALF_OPEN:
                decision = self._trials.take(self._generation, now)
            elif state is OPEN:
                decision = self._open_until - now
            elif state is FORCED_OPEN:
                # No timeout ends a forced open; the configured one is the honest hint.
                decision = self._recovery
            else:
                decision = cast("Permit", self._permit)
        finally:
            self._lock_release()
        if transition is not None:
            announce(transition, self._transition_listeners)
        return decision

    def _succeeded(self, permit: Permit | None, duration: float, now: float) -> None:
        slow = duration > self._slow_threshold
        window = self._window
        if window is None and permit is self._permit and self._state is CLOSED:
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
                self._emit_call(SUCCESS, duration, slow=slow)
            return
        transition = None
        self._lock_acquire()
        try:
            # The common case first and inline: a call admitted by the current CLOSED state.
            if permit is self._permit and self._state is CLOSED:
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
            announce(transition, self._transition_listeners)
        if self._call_listeners:
            self._emit_call(SUCCESS, duration, slow=slow)

    def _succeeded_otherwise(
        self, permit: Permit | None, now: float, *, slow: bool
    ) -> StateTransition | None:
        """A success in any case but the common one; called under the lock."""
        if permit is not None and permit.generation != self._generation:
            return None  # admitted by an earlier state: says nothing about this one
        state = self._state
        if state is CLOSED or state is METRICS_ONLY:
            self._consecutive = 0
            if self._window is not None:
                self._window.record(now, False, slow)  # noqa: FBT003  (positional, as on the hot path)
                if state is CLOSED and self._rates_trip(self._window):
                    return self._trip(escalate=False)
        elif state is HALF_OPEN:
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
                if state is CLOSED:
                    self._consecutive += 1
                    window = self._window
                    if window is not None:
                        window.record(now, True, slow)  # noqa: FBT003  (hot path, positional)
                    if self._consecutive >= self._failure_limit or (
                        window is not None and self._rates_trip(window)
                    ):
                        transition = self._trip(escalate=False)
                elif state is HALF_OPEN:
                    transition = self._trial_done(permit, failed=True)
                elif state is METRICS_ONLY:
                    self._consecutive += 1
                    if self._window is not None:
                        self._window.record(now, True, slow)  # noqa: FBT003
        finally:
            self._lock_release()
        if transition is not None:
            announce(transition, self._transition_listeners)
        if self._call_listeners:
            self._emit_call(FAILURE, duration, slow=slow)

    def _errored(
        self, exc: BaseException, permit: Permit | None, duration: float, now: float
    ) -> bool:
        if isinstance(exc, self._ignore) or not isinstance(exc, self._record):
            self._ignored(permit, duration)
            return False
        self._failed(permit, duration, now)
        return True

    def _ignored(self, permit: Permit | None, duration: float) -> None:
        if self._state is HALF_OPEN:
            self._lock_acquire()
            try:
                if self._state is HALF_OPEN and (
                    permit is None or permit.generation == self._generation
                ):
                    self._trials.free(permit)
            finally:
                self._lock_release()
        if self._call_listeners:
            self._emit_call(IGNORED, duration, slow=False)

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
        if failed:
            self._trials.free(permit)
            return self._trip(escalate=True)
        if self._trials.succeeded(permit):
            self._recovery = float(self.config.recovery_timeout)
            return self._set_state(CLOSED, self._now())
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
        return self._set_state(OPEN, now, retry_after=timeout)

    def _set_state(
        self, to_state: BreakerState, now: float, *, retry_after: float = 0.0
    ) -> StateTransition:
        from_state = self._state
        self._generation += 1
        self._state = to_state
        if to_state is not OPEN:
            self._open_until = -math.inf  # so that _acquire's lock-free test needs no state
        if to_state in ADMIT_ALL:
            self._consecutive = 0
            if self._window is not None:
                self._window.reset()
            self._permit = Permit(self._generation, trial=False, acquired_at=now)
        else:
            self._permit = None
            if to_state is HALF_OPEN:
                self._trials.clear()
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
            announce(transition, self._transition_listeners)

    # -- manual control --------------------------------------------------------------------------

    def force_open(self) -> None:
        """Reject every call until another manual transition (FORCED_OPEN)."""
        self._manual(FORCED_OPEN)

    def disable(self) -> None:
        """Admit every call and record nothing (DISABLED)."""
        self._manual(DISABLED)

    def metrics_only(self) -> None:
        """Admit every call, record outcomes, never trip (METRICS_ONLY)."""
        self._manual(METRICS_ONLY)

    def transition_to_closed(self) -> None:
        """Close the breaker and clear its window; the grown timeout is kept."""
        self._manual(CLOSED)

    def reset(self) -> None:
        """Close the breaker, clear its window and forget any timeout growth."""
        self._manual(CLOSED, clear_recovery=True)

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
            if state is OPEN:
                retry_after = max(self._open_until - now, 0.0)
            elif state is FORCED_OPEN:
                retry_after = self._recovery
            elif state is HALF_OPEN:
                in_flight, retry_after = self._trials.load(now)
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
