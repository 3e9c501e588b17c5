"""The memory guard's shell: sample this worker's RSS, act on the decision, log and count it.

A daemon thread samples every ``interval`` seconds (psutil's RSS: one read of
``/proc/self/statm``, microseconds) and feeds :class:`~fender.runtime._memory.MemoryGuard`:

* ``COLLECT``: ``gc.collect()``, then a ``memory_high`` warning with the RSS before and after;
* ``RECYCLE``: a ``memory_critical`` error event, ``memory_recycles_total`` counted, then
  ``recycle()``: under gunicorn, SIGTERM to this worker, which finishes the requests in flight
  and exits; the master starts a fresh worker (uWSGI's reload-on-rss). A process nobody
  restarts (a lone uvicorn) is never recycled: the event says so and the worker serves on.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fender._server import under_gunicorn
from fender.observability import _metrics as metrics
from fender.observability._logging import get_logger
from fender.runtime._container import ContainerLimits, read_usage
from fender.runtime._lifecycle import CLOSING_CONNECTIONS, STOP_ACCEPTING
from fender.runtime._memory import Action, MemoryGuard, Pressure

__all__ = ["ContainerCollector", "MemoryWatch", "recycle_under_gunicorn", "resident_bytes"]

RECYCLE_GRACE_SECONDS = 1.0
"""How long a recycling worker answers with ``Connection: close`` before it stops."""
_logger = get_logger("fender.memory")
_recycles = metrics.counter(
    "memory_recycles", "Workers that recycled themselves over the critical memory threshold."
)


def resident_bytes() -> int:
    """This process's resident set size, in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def recycle_under_gunicorn() -> bool:
    """Ask this gunicorn worker to finish its requests and exit; False when not a worker.

    gunicorn's workers exit gracefully on SIGTERM and the master replaces them. A process
    whose parent is not a gunicorn master would just stop, so it is left alone. The signal
    comes :data:`RECYCLE_GRACE_SECONDS` after the decision (see
    :data:`~fender.runtime._lifecycle.CLOSING_CONNECTIONS`).
    """
    if not under_gunicorn():
        return False
    # First a short while of "Connection: close" answers: keep-alive clients then send their
    # next request on a new connection, to another worker, instead of on one about to close.
    CLOSING_CONNECTIONS.set()
    for stop_accepting in STOP_ACCEPTING:
        stop_accepting()
    timer = threading.Timer(RECYCLE_GRACE_SECONDS, os.kill, (os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    return True


class MemoryWatch:
    """Samples RSS on a thread and carries out the guard's decisions."""

    def __init__(
        self,
        guard: MemoryGuard,
        *,
        interval: float = 5.0,
        sample: Callable[[], int] = resident_bytes,
        recycle: Callable[[], bool] = recycle_under_gunicorn,
        collect: Callable[[], object] = gc.collect,
    ) -> None:
        """Watch with ``guard``; ``sample``, ``recycle`` and ``collect`` are injectable."""
        self.guard = guard
        self.interval = interval
        self._sample = sample
        self._recycle = recycle
        self._collect = collect
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> Action:
        """Take one sample and act on it; return what was decided."""
        rss = self._sample()
        before = self.guard.pressure
        action = self.guard.observe(rss)
        share = self.guard.share_bytes
        if action is Action.COLLECT:
            self._collect()
            after = self._sample()
            _logger.warning(
                "memory_high",
                rss_mb=round(rss / 2**20, 1),
                after_gc_mb=round(after / 2**20, 1),
                share_mb=round(share / 2**20, 1),
                ratio=round(self.guard.ratio(rss), 3),
            )
        elif action is Action.RECYCLE:
            _recycles.inc()
            recycling = self._recycle()
            _logger.error(
                "memory_critical",
                rss_mb=round(rss / 2**20, 1),
                share_mb=round(share / 2**20, 1),
                ratio=round(self.guard.ratio(rss), 3),
                action="recycle" if recycling else "none: no server would restart this process",
            )
        elif self.guard.pressure is Pressure.OK and before is not Pressure.OK:
            _logger.info("memory_ok", rss_mb=round(rss / 2**20, 1))
        return action

    def start(self) -> None:
        """Sample on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fender-memory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a failed sample must not end the watch
                _logger.exception("memory_check_failed")


class ContainerCollector(Collector):
    """``container_memory_limit_bytes`` and ``container_memory_usage_bytes``, read at scrape."""

    def __init__(self, limits: ContainerLimits, root: str = "/") -> None:
        """Report ``limits`` (read once) and the cgroup's usage (read at each scrape)."""
        self.limits = limits
        self.root = root

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The limit (when one is known) and the usage (when the cgroup reports one)."""
        if self.limits.memory_bytes is not None:
            yield GaugeMetricFamily(
                "container_memory_limit_bytes",
                "Memory limit of the container (cgroup, MEMORY_LIMIT_MB or host RAM), in bytes.",
                value=self.limits.memory_bytes,
            )
        usage = read_usage(self.limits, self.root)
        if usage is not None:
            yield GaugeMetricFamily(
                "container_memory_usage_bytes",
                "Memory the container's cgroup uses now, in bytes.",
                value=usage,
            )
