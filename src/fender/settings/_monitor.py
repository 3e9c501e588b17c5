"""The in-process monitor's settings: its switch and the thresholds of its alerts.

A mixin of :class:`~fender.settings.Settings`, as :mod:`fender.settings._serving` is. The
defaults are the thresholds operators already alert on (and ``deploy/prometheus/alerts.yml``
uses): 5xx above 5% for a minute, p99 above 500 ms for two, memory above the guard's own
thresholds (FENDER_MEMORY_COLLECT_PERCENT, FENDER_MEMORY_CRITICAL_PERCENT), a breaker
open for a minute, a health check failing three runs in a row.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings

from fender.settings._fields import env_field

__all__ = ["MonitorFields"]


class MonitorFields(BaseSettings):
    """Fields of issue 15: the monitor behind ``/status`` and its threshold alerts."""

    monitor_enabled: bool = env_field(
        "FENDER_MONITOR",
        default=True,
        description="Keep 15 minutes of request stats per second in each worker (merged over "
        "gunicorn's workers) and evaluate threshold alerts; shown on /status.",
    )
    alert_min_requests: int = env_field(
        "FENDER_ALERT_MIN_REQUESTS",
        default=10,
        ge=1,
        description="Requests a minute needs before its error rate or p99 can raise an alert "
        "(one failed request in a quiet minute is not 100% errors).",
    )
    alert_error_rate: float = env_field(
        "FENDER_ALERT_ERROR_RATE",
        default=0.05,
        gt=0,
        le=1,
        description="Alert error_rate: share of 5xx over the last minute above this ...",
    )
    alert_error_rate_for: float = env_field(
        "FENDER_ALERT_ERROR_RATE_FOR",
        default=60.0,
        ge=0,
        description="... for this many seconds in a row.",
    )
    alert_p99_ms: float = env_field(
        "FENDER_ALERT_P99_MS",
        default=500.0,
        gt=0,
        description="Alert latency_p99: p99 of the last minute above this (milliseconds) ...",
    )
    alert_p99_for: float = env_field(
        "FENDER_ALERT_P99_FOR",
        default=120.0,
        ge=0,
        description="... for this many seconds in a row.",
    )
    alert_memory_for: float = env_field(
        "FENDER_ALERT_MEMORY_FOR",
        default=30.0,
        ge=0,
        description="Alerts memory_high (warning) and memory_critical: a worker's RSS above "
        "FENDER_MEMORY_COLLECT_PERCENT / FENDER_MEMORY_CRITICAL_PERCENT of its memory (as "
        "/status shows it) for this many seconds in a row.",
    )
    alert_breaker_open_for: float = env_field(
        "FENDER_ALERT_BREAKER_OPEN_FOR",
        default=60.0,
        ge=0,
        description="Alert breaker_open: a circuit breaker open this many seconds in a row.",
    )
    alert_health_failures: int = env_field(
        "FENDER_ALERT_HEALTH_FAILURES",
        default=3,
        ge=1,
        description="Alert health_failing: a health check failed this many runs in a row.",
    )
