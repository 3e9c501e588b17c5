"""Process metrics of every gunicorn worker and the master, read at scrape time.

prometheus_client's own process collector describes the one process it runs in, and in
multiprocess mode it is not part of the exposition at all: under gunicorn ``/metrics`` had no
CPU, memory or file-descriptor figures. This collector reads them for each live worker (the
processes that own a file in the multiprocess directory) and for the master (their parent),
labelled by ``pid`` and ``role``, from ``/proc`` through psutil at each scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["WorkerProcessCollector", "worker_pids"]


def worker_pids(directory: str) -> set[int]:
    """Pids that own a file in the multiprocess ``directory`` (``counter_1234.db``...)."""
    pids = set()
    for path in Path(directory).glob("*.db"):
        tail = path.stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            pids.add(int(tail))
    return pids


class WorkerProcessCollector(Collector):
    """RSS, CPU seconds, open fds and start time of each worker and of the master."""

    def __init__(self, directory: str) -> None:
        """Collect for the workers writing to ``directory`` and their master."""
        self.directory = directory

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Read each live process now; a process that exits meanwhile is skipped."""
        import psutil

        labels = ["pid", "role"]
        rss = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes.", labels=labels
        )
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "Total user and system CPU time in seconds.", labels=labels
        )
        fds = GaugeMetricFamily(
            "process_open_fds", "Number of open file descriptors.", labels=labels
        )
        started = GaugeMetricFamily(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            labels=labels,
        )
        master = os.getppid()
        roles = dict.fromkeys(worker_pids(self.directory), "worker")
        roles.setdefault(os.getpid(), "worker")
        roles.pop(master, None)
        roles[master] = "master"
        for pid, role in sorted(roles.items()):
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    if process.status() == psutil.STATUS_ZOMBIE:
                        continue
                    memory = process.memory_info().rss
                    times = process.cpu_times()
                    opened = process.num_fds()
                    created = process.create_time()
            except psutil.Error:
                continue
            values = [str(pid), role]
            rss.add_metric(values, memory)
            cpu.add_metric(values, times.user + times.system)
            fds.add_metric(values, opened)
            started.add_metric(values, created)
        yield from (rss, cpu, fds, started)
