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
from fender.resilience._states import BreakerState, Permit

TYPE_CHECKING = False  # (not typing's: see fender/__init__.py)
if TYPE_CHECKING:
    from typing import Any

    from fender.resilience._retry import (
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


# The retry policies load tenacity; nothing a default install runs retries, so they are
# imported on first use (PEP 562) and every app importing the breaker does not pay for them.
# The public names not defined above are exactly those of _retry.
def __getattr__(name: str) -> Any:
    """Import a retry name on first use, then keep it as a plain module attribute."""
    if name not in __all__:
        raise AttributeError(f"module 'fender.resilience' has no attribute {name!r}")
    from fender.resilience import _retry

    value = getattr(_retry, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, loaded or not (for completion and ``help``)."""
    return sorted({*globals(), *__all__})
