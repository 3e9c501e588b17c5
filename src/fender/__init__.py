"""fender: make a web service production-ready in one integration.

Example:
    >>> import fender
    >>> fender.load_settings({"FENDER_ENV": "development"}, env_file=None).env
    'development'
"""

from fender._clock import Clock, ManualClock
from fender._status import Finding, Status
from fender._version import __version__
from fender.errors import (
    CallNotPermitted,
    ConfigurationError,
    FenderError,
    RateLimited,
)
from fender.settings import Settings, load_settings

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
    "load_settings",
]
