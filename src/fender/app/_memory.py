"""Memory for one worker: its share of the container, the guard thread, the container metrics.

A worker's share is the container's limit (cgroup, MEMORY_LIMIT_MB, or the host's RAM)
divided by the number of workers the server runs (gunicorn's configuration exports it; 1
elsewhere). The guard (:mod:`fender.runtime._guard`) and the memory health check judge the
worker's RSS against that share, so that workers each within their share keep the
container within its limit.
"""

from __future__ import annotations

import os
import threading

from fender._clock import monotonic
from fender._hooks import Hooks
from fender.observability import _metrics as metrics
from fender.runtime._container import ContainerLimits, read_limits
from fender.runtime._guard import ContainerCollector, MemoryWatch
from fender.runtime._memory import MemoryGuard, MemoryThresholds
from fender.runtime._serve import WORKER_COUNT_VARIABLE
from fender.settings import Settings

__all__ = ["WORKER_COUNT_VARIABLE", "MemoryPlan", "memory_plan", "start_memory_guard"]


_lock = threading.Lock()
_collector_added = False
_watch: MemoryWatch | None = None


class MemoryPlan:
    """The container's limits and this worker's share of them."""

    def __init__(self, limits: ContainerLimits, workers: int) -> None:
        """Share ``limits`` among ``workers``."""
        self.limits = limits
        self.workers = workers

    @property
    def share_bytes(self) -> int | None:
        """This worker's share of the memory limit, or None when nothing bounds it."""
        total = self.limits.memory_bytes
        return None if total is None else total // self.workers


def worker_count() -> int:
    """The number of workers sharing the container (1 when not told)."""
    text = os.environ.get(WORKER_COUNT_VARIABLE, "")
    return int(text) if text.isdigit() and int(text) > 0 else 1


def memory_plan(settings: Settings) -> MemoryPlan:
    """Read the container's limits (MEMORY_LIMIT_MB wins) and publish them as metrics once."""
    global _collector_added  # noqa: PLW0603  (one collector per process)
    limits = read_limits(memory_limit_mb=settings.memory_limit_mb)
    with _lock:
        if not _collector_added and settings.metrics_enabled:
            metrics.add_scrape_collector(ContainerCollector(limits))
            _collector_added = True
    return MemoryPlan(limits, worker_count())


def start_memory_guard(settings: Settings, plan: MemoryPlan, hooks: Hooks) -> None:
    """Sample this worker's RSS from the first app's start-up until the process ends.

    One guard per process, as the memory it judges is the process's, whatever the number of
    apps in it (test suites build hundreds): the first app to start starts it, and it runs on
    a daemon thread. Off with FENDER_MEMORY_CHECK_INTERVAL=0, and when nothing bounds memory.
    """
    share = plan.share_bytes
    if not settings.memory_check_interval or share is None:
        return
    thresholds = MemoryThresholds(
        collect=settings.memory_collect_percent / 100,
        critical=settings.memory_critical_percent / 100,
    )
    interval = settings.memory_check_interval

    def start() -> None:
        global _watch  # noqa: PLW0603  (one guard per process)
        with _lock:
            if _watch is not None:
                return
            guard = MemoryGuard(share_bytes=share, clock=monotonic, thresholds=thresholds)
            _watch = MemoryWatch(guard, interval=interval)
        _watch.start()

    hooks.on_startup(start)
