"""How many workers a server may start: the smaller of what the CPUs and the memory allow.

Pure arithmetic over measured inputs (:mod:`fender.runtime._container` reads them)::

    cpu_workers    = 2 * cpus + 1   (sync and gthread workers: they block on I/O)
                   =     cpus + 1   (async workers: one already keeps a CPU busy)
    memory_workers = floor((limit * budget - master_rss) / per_worker), at least 1
    workers        = min(cpu_workers, memory_workers)

``cpus`` is the CPU quota rounded down (at least 1), so a 1-CPU container on a 64-core host
plans for 1, not 64. ``budget`` (0.75) leaves a quarter of the limit for the master, page
cache and spikes: a worker grows past its measured size under load. An explicit count
(``WEB_WORKERS``, ``GUNICORN_WORKERS``) wins over the CPU formula but is capped, with a warning,
where it would not fit in memory: the container would be OOM-killed, every request with it.

Example:
    >>> inputs = WorkerInputs(
    ...     cpus=64, memory_bytes=512 * 2**20, per_worker_mb=128, master_rss_mb=50
    ... )
    >>> plan = plan_workers(inputs)
    >>> plan.workers, plan.cpu_workers, plan.memory_workers, plan.reason
    (2, 129, 2, 'memory')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from fender.errors import ConfigurationError

__all__ = ["DEFAULT_BUDGET", "WorkerInputs", "WorkerPlan", "plan_workers"]

DEFAULT_BUDGET: Final = 0.75
"""The share of the memory limit the workers may take together."""

WorkerKind = Literal["sync", "gthread", "async"]


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerInputs:
    """What the count is computed from, each with where it came from.

    Args:
        cpus: whole CPUs (the quota rounded down, at least 1).
        memory_bytes: the memory limit; None when nothing bounds it.
        per_worker_mb: the resident size of one worker, in MiB.
        kind: the worker class: ``sync``/``gthread`` (2*cpus+1) or ``async`` (cpus+1).
        master_rss_mb: the master process's resident size, taken off the budget.
        budget: the share of the limit the workers may use (default 0.75).
        override: an explicit worker count (WEB_WORKERS / GUNICORN_WORKERS), or None.
        sources: where each input came from (``{"memory_bytes": "/sys/fs/cgroup/memory.max"}``).
    """

    cpus: int
    memory_bytes: int | None
    per_worker_mb: float
    kind: WorkerKind = "sync"
    master_rss_mb: float = 0.0
    budget: float = DEFAULT_BUDGET
    override: int | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Reject inputs no count can come from, naming the field."""
        if not isinstance(self.cpus, int) or self.cpus < 1:
            raise ConfigurationError("cpus", self.cpus, "an integer >= 1")
        if not self.per_worker_mb > 0:
            raise ConfigurationError("FENDER_WORKER_MEMORY_MB", self.per_worker_mb, "> 0 MiB")
        if not 0 < self.budget <= 1:
            raise ConfigurationError("budget", self.budget, "a share in (0, 1]")
        if self.override is not None and self.override < 1:
            raise ConfigurationError("WEB_WORKERS", self.override, "an integer >= 1")
        if self.kind not in ("sync", "gthread", "async"):
            raise ConfigurationError("worker_class", self.kind, "sync, gthread or async")


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """The count, the two bounds it came from, and why."""

    workers: int
    cpu_workers: int
    memory_workers: int | None
    reason: str
    inputs: WorkerInputs
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description (``fender workers --json``, the start-up event)."""
        return {
            "workers": self.workers,
            "cpu_workers": self.cpu_workers,
            "memory_workers": self.memory_workers,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "inputs": asdict(self.inputs),
        }


def plan_workers(inputs: WorkerInputs) -> WorkerPlan:
    """The worker count for ``inputs`` (see the module for the formula)."""
    cpu_workers = inputs.cpus + 1 if inputs.kind == "async" else 2 * inputs.cpus + 1
    memory_workers = _memory_workers(inputs)
    warnings: list[str] = []
    if inputs.override is not None:
        if memory_workers is not None and inputs.override > memory_workers:
            warnings.append(
                f"{inputs.override} workers asked for, but {memory_workers} fit in memory "
                f"({_budget_text(inputs)}): capped at {memory_workers}"
            )
            return WorkerPlan(
                memory_workers,
                cpu_workers,
                memory_workers,
                "override capped by memory",
                inputs,
                tuple(warnings),
            )
        return WorkerPlan(inputs.override, cpu_workers, memory_workers, "override", inputs)
    if memory_workers is not None and memory_workers < cpu_workers:
        return WorkerPlan(memory_workers, cpu_workers, memory_workers, "memory", inputs)
    return WorkerPlan(cpu_workers, cpu_workers, memory_workers, "cpu", inputs)


def _memory_workers(inputs: WorkerInputs) -> int | None:
    if inputs.memory_bytes is None:
        return None
    available_mb = inputs.memory_bytes / 2**20 * inputs.budget - inputs.master_rss_mb
    return max(1, math.floor(available_mb / inputs.per_worker_mb))


def _budget_text(inputs: WorkerInputs) -> str:
    limit_mb = (inputs.memory_bytes or 0) / 2**20
    return (
        f"{inputs.budget:.0%} of {limit_mb:.0f} MiB less {inputs.master_rss_mb:.0f} MiB for the "
        f"master, {inputs.per_worker_mb:.0f} MiB a worker"
    )
