"""Resilience patterns: a circuit breaker (sync and async), its registry, and retry policies.

Stack them with the retry inside the breaker, so that one user call counts once against it::

    @breaker
    @policy
    def fetch() -> bytes: ...
"""

from __future__ import annotations

from fender.resilience._breaker import CircuitBreaker
from fender.resilience._config import BreakerConfig, SlidingWindowType
from fender.resilience._events import BreakerSnapshot, CallEvent, Outcome, StateTransition
from fender.resilience._registry import BreakerRegistry, default_registry
from fender.resilience._retry import (
    RETRY_BACKGROUND,
    RETRY_REQUEST,
    RETRY_STARTUP,
    RetryBudget,
    RetryConfig,
    RetryPolicy,
)
from fender.resilience._states import BreakerState, Permit

__all__ = [
    "RETRY_BACKGROUND",
    "RETRY_REQUEST",
    "RETRY_STARTUP",
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "CallEvent",
    "CircuitBreaker",
    "Outcome",
    "Permit",
    "RetryBudget",
    "RetryConfig",
    "RetryPolicy",
    "SlidingWindowType",
    "StateTransition",
    "default_registry",
]
