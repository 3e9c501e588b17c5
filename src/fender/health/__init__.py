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
from fender.health.builtin import (
    celery_check,
    database_check,
    disk_check,
    http_check,
    memory_check,
    redis_check,
)
from fender.health.checks import (
    Check,
    CheckOutcome,
    CheckResult,
    HealthReport,
    Kind,
    aggregate,
    sanitize,
)
from fender.health.declared import check, declared
from fender.health.registry import HealthConfig, HealthRegistry
from fender.health.render import (
    Format,
    RenderConfig,
    Rendered,
    choose_format,
    render_health_json,
    render_json,
    render_response,
    render_summary,
)

__all__ = [
    "Check",
    "CheckOutcome",
    "CheckResult",
    "Format",
    "HealthConfig",
    "HealthRegistry",
    "HealthReport",
    "Kind",
    "RenderConfig",
    "Rendered",
    "Status",
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
