"""Summaries of ``/status`` as the shared contract gives them, for the page's tests.

:func:`full_summary` has every key the monitor adds: active and resolved alerts, sparklines
with gaps, slow routes. :data:`NOW` is the wall clock its "ago" texts count from (12 minutes
after the critical alert fired). :func:`legacy_summary` is an app's without the monitor.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

__all__ = ["NOW", "full_summary", "legacy_summary"]

NOW = float(calendar.timegm(time.strptime("2026-12-06T07:43:02Z", "%Y-%m-%dT%H:%M:%SZ")))
STEPS = 60


def legacy_summary() -> dict[str, Any]:
    """The keys of /status before the monitor: checks, breakers, memory."""
    return {
        "service": "orders",
        "status": "warn",
        "state": "ready",
        "uptime_seconds": 3723.4,
        "started_at": "2026-12-06T06:41:00Z",
        "pid": 4242,
        "version": "1.4.2",
        "degraded": ["cache"],
        "failing": [],
        "checks": {
            "cache": {"status": "warn", "output": "fallback: memory"},
            "disk": {"status": "pass", "output": None},
        },
        "breakers": [
            {"name": "kv-peer", "state": "open", "retry_after": 12.5},
            {"name": "payments-api", "state": "closed", "retry_after": 0.0},
        ],
        "memory": {"rss_bytes": 300 * 1024 * 1024, "limit_bytes": 512 * 1024 * 1024,
                   "used_ratio": 0.586},
    }  # fmt: skip


def _wave(step: int) -> float:
    return round(2.0 + (step % 12) / 4, 2)


def full_summary() -> dict[str, Any]:
    """A summary with every contract key: two active alerts, gaps in three series."""
    requests = [_wave(i) for i in range(STEPS)]
    requests[:4] = [0.0] * 4  # the service had just started: no traffic yet
    errors: list[float | None] = [None] * 4 + [0.0] * (STEPS - 4)
    errors[-6:] = [0.08, 0.12, 0.15, 0.11, 0.13, 0.12]
    p99: list[float | None] = [None] * 4 + [40.0 + (i % 7) * 9 for i in range(STEPS - 4)]
    p99[30:33] = [None, None, None]  # a gap: steps without a request
    memory: list[float | None] = [0.55 + i * 0.001 for i in range(STEPS)]
    memory[45] = None  # a sample the monitor missed
    return {
        **legacy_summary(),
        "refresh_seconds": 10,
        "traffic": {
            "workers": 2,
            "windows": {
                "1m": {"seconds": 60, "requests": 240, "requests_per_s": 4.0, "errors": 29,
                       "error_rate": 0.121, "rate_limited": 3,
                       "p50_ms": 3.1, "p95_ms": 9.0, "p99_ms": 95.25},
                "5m": {"seconds": 300, "requests": 900, "requests_per_s": 3.0, "errors": 40,
                       "error_rate": 0.0444, "rate_limited": 3,
                       "p50_ms": 2.9, "p95_ms": 8.2, "p99_ms": 88.0},
                "15m": {"seconds": 900, "requests": 2400, "requests_per_s": 2.667, "errors": 41,
                        "error_rate": 0.0171, "rate_limited": 1250,
                        "p50_ms": 2.8, "p95_ms": 8.0, "p99_ms": 1234.5},
            },
            "series": {"step_seconds": 15, "requests_per_s": requests, "error_rate": errors,
                       "p99_ms": p99, "memory_ratio": memory},
            "slowest_routes": [
                {"route": "/items/{item_id}", "requests": 400, "errors": 0, "error_rate": 0.0,
                 "p50_ms": 2.0, "p95_ms": 8.0, "p99_ms": 130.0},
                {"route": "/orders", "requests": 300, "errors": 36, "error_rate": 0.12,
                 "p50_ms": 3.0, "p95_ms": 11.0, "p99_ms": 95.0},
                {"route": "/health", "requests": 0, "errors": 0, "error_rate": None,
                 "p50_ms": None, "p95_ms": None, "p99_ms": None},
            ],
        },
        "alerts": {
            "active": [
                {"name": "breaker_open", "subject": "kv-peer", "severity": "warning",
                 "since": "2026-12-06T07:38:30Z", "value": 90.0, "threshold": 60.0,
                 "message": "circuit breaker kv-peer open for 1.5 min (threshold 1 min)"},
                {"name": "error_rate", "subject": None, "severity": "critical",
                 "since": "2026-12-06T07:31:02Z", "value": 0.12, "threshold": 0.05,
                 "message": "5xx in 12.0% of requests over the last minute (threshold 5%)"},
            ],
            "resolved": [
                {"name": "memory_high", "subject": None, "severity": "warning",
                 "since": "2026-12-06T05:10:00Z", "resolved_at": "2026-12-06T05:20:00Z",
                 "message": "memory at 76% of the limit (threshold 75%)"},
            ],
        },
    }  # fmt: skip
