"""Health checks: define them, run them concurrently, render the results.

Example:
    >>> from fender.health import HealthRegistry, render_response
    >>> registry = HealthRegistry()
    >>> @registry.check(name="cache", critical=False, timeout=0.5)
    ... async def cache() -> bool:
    ...     return True
    >>> report = registry.run_sync()
    >>> render_response(report, accept="application/json").status_code
    200
    >>> registry.close()
"""

from __future__ import annotations

from fender._status import Status
from fender.health._builtin_http import HttpBackend, http_check
from fender.health._builtin_stores import SupportsPing, celery_check, database_check, redis_check
from fender.health._builtin_system import disk_check, memory_check
from fender.health._check import (
    Check,
    CheckFunc,
    CheckOutcome,
    CheckResult,
    HealthReport,
    Kind,
    aggregate,
)
from fender.health._declared import check, declared
from fender.health._options import CheckOptions, CheckOptionsDict
from fender.health._registry import HealthConfig, HealthRegistry, KindSelector
from fender.health._render import (
    Format,
    RenderConfig,
    Rendered,
    choose_format,
    render_health_json,
    render_json,
    render_response,
    render_summary,
)
from fender.health._runner import Listener
from fender.health._sanitize import sanitize

__all__ = [
    "Check",
    "CheckFunc",
    "CheckOptions",
    "CheckOptionsDict",
    "CheckOutcome",
    "CheckResult",
    "Format",
    "HealthConfig",
    "HealthRegistry",
    "HealthReport",
    "HttpBackend",
    "Kind",
    "KindSelector",
    "Listener",
    "RenderConfig",
    "Rendered",
    "Status",
    "SupportsPing",
    "aggregate",
    "celery_check",
    "check",
    "choose_format",
    "database_check",
    "declared",
    "disk_check",
    "http_check",
    "memory_check",
    "redis_check",
    "render_health_json",
    "render_json",
    "render_response",
    "render_summary",
    "sanitize",
]
