"""How a circuit breaker trips and recovers: :class:`BreakerConfig`, validated when built."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from typing import Any

from fender.errors import ConfigurationError

__all__ = ["BreakerConfig", "SlidingWindowType"]


class SlidingWindowType(enum.StrEnum):
    """How the failure and slow-call rates are measured."""

    COUNT_BASED = "count_based"
    """Over the last ``sliding_window_size`` calls."""
    TIME_BASED = "time_based"
    """Over the last ``sliding_window_size`` seconds, in one-second buckets."""


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
