"""Resilience patterns: a circuit breaker (sync and async), its registry, and retry policies.

Stack them with the retry inside the breaker, so that one user call counts once against it::

    @breaker
    @policy
    def fetch() -> bytes: ...
"""

from __future__ import annotations

from fender.resilience.breaker import (
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
    CallEvent,
    CircuitBreaker,
    Outcome,
    Permit,
    SlidingWindowType,
    StateTransition,
)
from fender.resilience.registry import BreakerRegistry, default_registry
from fender.resilience.retry import (
    RETRY_BACKGROUND,
    RETRY_REQUEST,
    RETRY_STARTUP,
    RetryBudget,
    RetryConfig,
    RetryPolicy,
)

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
