"""Retry policies on tenacity: full-jitter exponential backoff, a total deadline, a retry budget.

A :class:`RetryConfig` says how to retry; a :class:`RetryPolicy` turns it into tenacity's
``Retrying`` (sync) and ``AsyncRetrying`` (async) from one set of stop, wait and retry
strategies, so the two cannot drift. Three rules keep retries from making an outage worse:

* backoff is exponential with full jitter (a uniform draw in ``[0, window)``), so clients that
  failed together do not retry together;
* a deadline bounds the whole call: a retry whose backoff would end after it is not made;
* a :class:`RetryBudget` shared by many calls allows retries only up to a ratio of first attempts
  (plus a small floor per second), so when everything fails, load grows by the ratio, not by
  ``max_attempts`` times.

:class:`~fender.errors.CallNotPermitted` is never retried: an open breaker has already said when
to come back. Put the retry *inside* the breaker, so one user call counts once against it::

    @breaker
    @policy
    def fetch() -> bytes: ...
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from fender._clock import Clock, monotonic
from fender.errors import CallNotPermitted, ConfigurationError
from fender.resilience._window import TimeWindow

__all__ = [
    "RETRY_BACKGROUND",
    "RETRY_REQUEST",
    "RETRY_STARTUP",
    "RetryBudget",
    "RetryConfig",
    "RetryPolicy",
]

logger = logging.getLogger("fender.resilience")

P = ParamSpec("P")
R = TypeVar("R")

_MAX_ATTEMPTS = 100


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RetryConfig:
    """How to retry one call; immutable, validated when built.

    Example:
        >>> RetryConfig(max_attempts=4, deadline=1.0).max_attempts
        4
    """

    max_attempts: int = 3
    """Attempts in all, the first included (1 means no retry); at most 100."""
    initial_backoff: float = 0.1
    """Seconds: the jitter window before the first retry; it doubles for each further retry."""
    max_backoff: float = 2.0
    """Seconds: the largest jitter window."""
    deadline: float | None = 5.0
    """Seconds from the first attempt; no retry is made whose backoff would end after it."""
    retry_on: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    """Exceptions worth retrying (transient ones); anything else is raised at once."""
    never_retry: tuple[type[BaseException], ...] = ()
    """Exceptions never retried even when they match ``retry_on``; CallNotPermitted always is."""

    def __post_init__(self) -> None:
        """Raise :class:`~fender.errors.ConfigurationError` naming the first invalid field."""
        attempts = self.max_attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool):
            raise ConfigurationError("max_attempts", attempts, "an integer in [1, 100]")
        if not 1 <= attempts <= _MAX_ATTEMPTS:
            raise ConfigurationError("max_attempts", attempts, "an integer in [1, 100]")
        for name in ("initial_backoff", "max_backoff", "deadline"):
            value = getattr(self, name)
            if name == "deadline" and value is None:
                continue
            if not _positive(value):
                raise ConfigurationError(name, value, "a number of seconds > 0")
        if self.max_backoff < self.initial_backoff:
            raise ConfigurationError(
                "max_backoff",
                self.max_backoff,
                f"at least initial_backoff ({self.initial_backoff})",
            )
        for name in ("retry_on", "never_retry"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(
                isinstance(item, type) and issubclass(item, BaseException) for item in value
            ):
                raise ConfigurationError(name, value, "a tuple of exception classes")


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


RETRY_REQUEST = RetryConfig(max_attempts=3, initial_backoff=0.05, max_backoff=0.5, deadline=1.0)
"""Inside a request: two quick retries, all done within a second."""
RETRY_BACKGROUND = RetryConfig(
    max_attempts=6, initial_backoff=0.5, max_backoff=30.0, deadline=120.0
)
"""Background jobs: patient, up to two minutes."""
RETRY_STARTUP = RetryConfig(max_attempts=30, initial_backoff=0.2, max_backoff=5.0, deadline=60.0)
"""Waiting for a dependency at start-up (database, Redis): up to a minute."""


class RetryBudget:
    """Retries allowed at most as ``ratio`` of first attempts, plus ``min_per_second``.

    Counted over the last ``ttl`` seconds, in one-second buckets; thread-safe. Share one budget
    between every call to a dependency (like Finagle's RetryBudget).

    Example:
        >>> from fender._clock import ManualClock
        >>> budget = RetryBudget(ratio=0.5, min_per_second=0.0, clock=ManualClock())
        >>> for _ in range(4):
        ...     budget.record_call()
        >>> [budget.try_spend() for _ in range(3)]
        [True, True, False]
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: int = 10,
        clock: Clock = monotonic,
    ) -> None:
        """Allow ``ratio`` retries per first attempt plus ``min_per_second``, over ``ttl`` s."""
        if not _positive(ratio) and ratio != 0:
            raise ConfigurationError("ratio", ratio, "a number >= 0")
        if not _positive(min_per_second) and min_per_second != 0:
            raise ConfigurationError("min_per_second", min_per_second, "a number >= 0")
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 1:
            raise ConfigurationError("ttl", ttl, "an integer number of seconds >= 1")
        self.ratio = ratio
        self.min_per_second = min_per_second
        self._reserve = min_per_second * ttl
        self._clock = clock
        self._lock = threading.Lock()
        # Events in the window: every first attempt and every retry; `failures` counts retries.
        self._window = TimeWindow(ttl)

    def record_call(self) -> None:
        """Count a first attempt: it earns ``ratio`` of a retry."""
        with self._lock:
            self._window.record(self._clock(), False, False)  # noqa: FBT003  (window signature)

    def try_spend(self) -> bool:
        """Take one retry from the budget; ``False`` (and nothing taken) when it is spent."""
        with self._lock:
            now = self._clock()
            window = self._window
            window.refresh(now)
            retries = window.failures
            if retries + 1 > self.ratio * (window.calls - retries) + self._reserve:
                return False
            window.record(now, True, False)  # noqa: FBT003
            return True

    def available(self) -> float:
        """Retries the budget would allow now (may be fractional)."""
        with self._lock:
            window = self._window
            window.refresh(self._clock())
            retries = window.failures
            return max(self.ratio * (window.calls - retries) + self._reserve - retries, 0.0)


class _FullJitter(wait_base):
    """Full jitter: uniform in ``[0, min(max, initial * 2 ** (retry - 1)))``."""

    def __init__(self, initial: float, maximum: float, rng: Callable[[], float]) -> None:
        self.initial = initial
        self.maximum = maximum
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exponent = min(retry_state.attempt_number - 1, 64)
        return self.rng() * min(self.maximum, self.initial * 2.0**exponent)


class _Deadline(stop_base):
    """Stop when the next attempt would start after ``start + seconds`` by our clock."""

    def __init__(self, start: float, seconds: float, clock: Clock) -> None:
        self.end = start + seconds
        self.clock = clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.clock() + retry_state.upcoming_sleep >= self.end


class _Budget(stop_base):
    """Stop when the budget has no retry left.

    Evaluated last, so that a token is spent only for a retry that every other rule allows.
    """

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if self.budget.try_spend():
            return False
        logger.debug("retry budget exhausted", extra={"attempt": retry_state.attempt_number})
        return True


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    outcome = retry_state.outcome
    logger.debug(
        "retrying",
        extra={
            "attempt": retry_state.attempt_number,
            "sleep": round(retry_state.upcoming_sleep, 3),
            "error": repr(outcome.exception()) if outcome is not None else None,
        },
    )


class RetryPolicy:
    """A :class:`RetryConfig` made runnable, for sync and async calls alike.

    Args:
        config: How to retry.
        budget: A shared :class:`RetryBudget`; ``None`` for no budget.
        clock: Measures the deadline; inject a manual clock in tests.
        rng: Uniform floats in ``[0, 1)`` for the jitter.
        sleep: Sleeps between sync attempts.
        async_sleep: Sleeps between async attempts.

    Example:
        >>> policy = RetryPolicy(RETRY_REQUEST, budget=RetryBudget())
        >>> @policy
        ... def fetch() -> str:
        ...     return "ok"
        >>> fetch()
        'ok'
    """

    def __init__(
        self,
        config: RetryConfig | None = None,
        *,
        budget: RetryBudget | None = None,
        clock: Clock = monotonic,
        rng: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Build the policy; see the class docstring for the arguments."""
        self.config = RetryConfig() if config is None else config
        if not isinstance(self.config, RetryConfig):
            raise ConfigurationError("config", config, "a RetryConfig")
        self.budget = budget
        self._clock = clock
        never: tuple[type[BaseException], ...] = (CallNotPermitted, *self.config.never_retry)
        retry_on = self.config.retry_on

        def worth_retrying(exc: BaseException) -> bool:
            return isinstance(exc, retry_on) and not isinstance(exc, never)

        # The strategies every attempt shares; only the deadline is per call.
        shared: dict[str, Any] = {
            "wait": _FullJitter(self.config.initial_backoff, self.config.max_backoff, rng),
            "retry": tenacity.retry_if_exception(worth_retrying),
            "reraise": True,
            "before_sleep": _log_retry,
        }
        self._sync = tenacity.Retrying(sleep=sleep, **shared)
        self._async = tenacity.AsyncRetrying(sleep=async_sleep, **shared)

    def _stop(self) -> stop_base:
        config = self.config
        stop: stop_base = tenacity.stop_after_attempt(config.max_attempts)
        if config.deadline is not None:
            stop = stop | _Deadline(self._clock(), config.deadline, self._clock)
        if self.budget is not None:
            self.budget.record_call()
            stop = stop | _Budget(self.budget)  # last: spend a token only if nothing else stops
        return stop

    def retrying(self) -> tenacity.Retrying:
        """A fresh tenacity ``Retrying`` for one call (its deadline starts now)."""
        return self._sync.copy(stop=self._stop())

    def async_retrying(self) -> tenacity.AsyncRetrying:
        """A fresh tenacity ``AsyncRetrying`` for one call (its deadline starts now)."""
        return self._async.copy(stop=self._stop())

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)``, retrying per the policy; the last error is re-raised."""
        return self.retrying()(fn, *args, **kwargs)

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)``, retrying per the policy."""
        return cast("R", await self.async_retrying()(fn, *args, **kwargs))

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function or a coroutine function."""
        if inspect.iscoroutinefunction(fn):
            call_async = self.call_async

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await call_async(fn, *args, **kwargs)

            return cast("Callable[P, R]", functools.update_wrapper(async_wrapper, fn))
        call = self.call

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return call(fn, *args, **kwargs)

        return cast("Callable[P, R]", functools.update_wrapper(wrapper, fn))
