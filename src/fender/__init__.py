"""fender: make a web service production-ready in one integration.

``import fender`` loads almost nothing: each name below is imported on first use (PEP 562),
so that ``fender probe``, run every few seconds as a container health check, stays light.

Example:
    >>> import fender
    >>> fender.load_settings({"FENDER_ENV": "development"}, env_file=None).env
    'development'
"""

from __future__ import annotations

import importlib

from fender._version import __version__

# Not typing.TYPE_CHECKING: importing typing costs more than the rest of ``import fender``.
# Type checkers read a name TYPE_CHECKING as true whatever its value.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from fender import asgi, cache, health, redis, wsgi
    from fender._clock import Clock, ManualClock
    from fender._status import Finding, Status
    from fender.errors import CallNotPermitted, ConfigurationError, FenderError
    from fender.frameworks.starlette import install
    from fender.http.ratelimit import rate_limit
    from fender.observability._logging import configure_logging, current_request, log_performance
    from fender.resilience import BreakerConfig, CircuitBreaker, RetryPolicy
    from fender.settings import Settings, load_settings

__all__ = [
    "BreakerConfig",
    "CallNotPermitted",
    "CircuitBreaker",
    "Clock",
    "ConfigurationError",
    "FenderError",
    "Finding",
    "ManualClock",
    "RetryPolicy",
    "Settings",
    "Status",
    "__version__",
    "asgi",
    "cache",
    "configure_logging",
    "current_request",
    "health",
    "install",
    "load_settings",
    "log_performance",
    "rate_limit",
    "redis",
    "wsgi",
]

# Where each name lives: the one module that defines or re-exports it publicly.
_HOMES: dict[str, str] = {
    "BreakerConfig": "fender.resilience",
    "CallNotPermitted": "fender.errors",
    "CircuitBreaker": "fender.resilience",
    "Clock": "fender._clock",
    "ConfigurationError": "fender.errors",
    "FenderError": "fender.errors",
    "Finding": "fender._status",
    "ManualClock": "fender._clock",
    "RetryPolicy": "fender.resilience",
    "Settings": "fender.settings",
    "Status": "fender._status",
    "configure_logging": "fender.observability",
    "current_request": "fender.observability",
    "install": "fender.frameworks.starlette",
    "load_settings": "fender.settings",
    "log_performance": "fender.observability",
    "rate_limit": "fender.http.ratelimit",
}
_SUBMODULES = frozenset({"asgi", "cache", "health", "redis", "wsgi"})


def __getattr__(name: str) -> Any:
    """Import ``name`` on first use (PEP 562), then keep it as a plain module attribute."""
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f"fender.{name}")
    elif name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    else:
        raise AttributeError(f"module 'fender' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, loaded or not (for completion and ``help``)."""
    return sorted({*globals(), *__all__})
