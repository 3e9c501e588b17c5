"""fender: make a web service production-ready in one integration.

Example:
    >>> import fender
    >>> fender.load_settings({"FENDER_ENV": "development"}, env_file=None).env
    'development'
"""

from fender import asgi, wsgi
from fender._clock import Clock, ManualClock
from fender._status import Finding, Status
from fender._version import __version__
from fender.errors import (
    CallNotPermitted,
    ConfigurationError,
    FenderError,
    RateLimited,
)
from fender.observability.logging import (
    configure_logging,
    current_request,
    log_performance,
)
from fender.settings import Settings, load_settings
from fender.web.fastapi import install

__all__ = [
    "CallNotPermitted",
    "Clock",
    "ConfigurationError",
    "FenderError",
    "Finding",
    "ManualClock",
    "RateLimited",
    "Settings",
    "Status",
    "__version__",
    "asgi",
    "configure_logging",
    "current_request",
    "install",
    "load_settings",
    "log_performance",
    "wsgi",
]
