"""Health checks as Prometheus metrics, fed by a registry listener.

* ``health_checks_total{check,status}``: every fresh run of a check (cache hits excluded), by
  status (pass, warn, fail).
* ``health_check_consecutive_failures{check}``: runs in a row that failed; 0 after a pass or a
  warn (degraded is not failing). Under gunicorn the workers combine by ``max`` (``livemax``), so
  the alert "failing three times in a row" fires when any live worker saw three in a row.

The background refresh (FENDER_HEALTH_INTERVAL) runs the checks even when no probe asks, so the
streak grows with time, not only with traffic.
"""

from __future__ import annotations

import threading
from typing import Any

from fender._status import Status
from fender.health._check import CheckOutcome
from fender.observability import _metrics as metrics

__all__ = ["HealthMetrics"]


class HealthMetrics:
    """A registry listener: ``registry.add_listener(HealthMetrics())``."""

    def __init__(self) -> None:
        # Declared here, not at import: gunicorn's master imports fender before it knows the
        # multiprocess directory.
        self._runs = metrics.counter(
            "health_checks", "Health check runs, by check and status.", ("check", "status")
        )
        self._streak = metrics.gauge(
            "health_check_consecutive_failures",
            "Runs in a row that a health check failed (0 after a pass or a warn).",
            ("check",),
            multiprocess_mode="livemax",
        )
        self._lock = threading.Lock()
        self._streaks: dict[str, int] = {}
        self._run_children: dict[tuple[str, Status], Any] = {}
        self._streak_children: dict[str, Any] = {}

    def __call__(self, outcome: CheckOutcome) -> None:
        name, status = outcome.name, outcome.result.status
        with self._lock:
            streak = self._streaks.get(name, 0) + 1 if status is Status.FAIL else 0
            self._streaks[name] = streak
            runs = self._run_children.get((name, status))
            if runs is None:
                runs = self._run_children[name, status] = self._runs.labels(name, status.value)
            gauge = self._streak_children.get(name)
            if gauge is None:
                gauge = self._streak_children[name] = self._streak.labels(name)
            # Under the lock: two runs of one check finishing together must not set the
            # gauge out of order.
            gauge.set(streak)
        runs.inc()

    def streaks(self) -> dict[str, int]:
        """Runs in a row each check failed, as of its last run (the monitor's alert reads it)."""
        with self._lock:
            return dict(self._streaks)
