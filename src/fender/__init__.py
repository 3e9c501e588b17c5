"""fender: make a web service production-ready in one integration.

Example:
    >>> import fender
    >>> fender.load_settings({"FENDER_ENV": "development"}, env_file=None).env
    'development'
"""

from fender import asgi, cache, health, redis, wsgi
from fender._clock import Clock, ManualClock
from fender._status import Finding, Status
from fender._version import __version__
from fender.errors import (
    CallNotPermitted,
    ConfigurationError,
    FenderError,
    RateLimited,
)
from fender.frameworks.starlette import install
from fender.http.ratelimit import rate_limit
from fender.observability.logging import (
    configure_logging,
    current_request,
    log_performance,
)
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
    "RateLimited",
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
