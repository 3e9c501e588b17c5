"""The server's configuration, computed once from the settings and the container's limits.

``fender run`` and ``gunicorn -c python:fender.runtime.gunicorn_conf`` both serve what
:func:`plan_serving` says, and ``fender workers`` prints the same plan, so the three never
disagree. Every value has an environment override (see :mod:`fender.settings._serving`).

Defaults, and why:

* workers: :func:`~fender.runtime._workers.plan_workers` (CPU formula, capped by memory);
* ASGI apps: fender's uvicorn worker (graceful-timeout fix); WSGI apps: fender's ``gthread``
  worker with ``GUNICORN_THREADS`` threads, which reads request heads off the threads (a slow
  client holds no thread) and answers liveness when every thread is busy
  (:mod:`fender.runtime.gthread_worker`);
* timeout 120 s, graceful timeout 30 s, keep-alive 5 s (65 s behind a load balancer whose
  idle timeout is 60 s: the server must not close a connection the balancer is reusing);
* ``max_requests`` 1000 with jitter 100: slow leaks are bounded and workers do not restart
  together;
* ``worker_tmp_dir`` ``/dev/shm`` when present: the heartbeat file on a disk-backed ``/tmp``
  can stall a worker for seconds under I/O pressure, and gunicorn then kills it;
* no control socket (gunicorn 27 opens ``~/.gunicorn/gunicorn.ctl`` by default).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fender.runtime._container import ContainerLimits
from fender.runtime._workers import WorkerInputs, WorkerPlan, plan_workers
from fender.settings import Settings

__all__ = [
    "THREAD_WORKER",
    "UVICORN_WORKER",
    "WORKER_COUNT_VARIABLE",
    "AppKind",
    "ServePlan",
    "app_kind",
    "configured_kind",
    "plan_serving",
]

WORKER_COUNT_VARIABLE = "FENDER_WORKER_COUNT"
"""Set by fender's gunicorn configuration in the master: the workers sharing the container."""
UVICORN_WORKER = "fender.runtime.uvicorn_worker.UvicornWorker"
THREAD_WORKER = "fender.runtime.gthread_worker.ThreadWorker"
AppKind = Literal["asgi", "wsgi"]
_SHM = "/dev/shm"  # noqa: S108  (gunicorn's heartbeat files: memory-backed, per worker)


def configured_kind(settings: Settings, told: str | None = None) -> AppKind:
    """The app's kind without importing it.

    ``told`` (``fender run`` detected it) first; else WSGI when FENDER_WORKER_CLASS names a
    WSGI worker (sync, gthread); else ASGI.
    """
    if told in ("asgi", "wsgi"):
        return "wsgi" if told == "wsgi" else "asgi"
    return "wsgi" if settings.worker_class in ("sync", "gthread") else "asgi"


def app_kind(app: object) -> AppKind:
    """ASGI when calling ``app`` is a coroutine (an ``async def`` app or ``__call__``)."""
    if inspect.iscoroutinefunction(app):
        return "asgi"
    call = type(app).__call__ if callable(app) else None
    return "asgi" if inspect.iscoroutinefunction(call) else "wsgi"


@dataclass(frozen=True, slots=True)
class ServePlan:
    """What gunicorn is told, and the inputs that decided it."""

    kind: AppKind
    worker_class: str
    workers: WorkerPlan
    threads: int
    bind: str
    timeout: int
    graceful_timeout: int
    keepalive: int
    max_requests: int
    max_requests_jitter: int
    preload: bool
    worker_tmp_dir: str | None
    limits: ContainerLimits

    def gunicorn_settings(self) -> dict[str, Any]:
        """The values as gunicorn's configuration names them."""
        values: dict[str, Any] = {
            "bind": [self.bind],
            "workers": self.workers.workers,
            "worker_class": self.worker_class,
            "timeout": self.timeout,
            "graceful_timeout": self.graceful_timeout,
            "keepalive": self.keepalive,
            "max_requests": self.max_requests,
            "max_requests_jitter": self.max_requests_jitter,
            "preload_app": self.preload,
            "control_socket_disable": True,
        }
        if self.worker_class == THREAD_WORKER:
            values["threads"] = self.threads
        if self.worker_tmp_dir is not None:
            values["worker_tmp_dir"] = self.worker_tmp_dir
        return values

    def as_event(self) -> dict[str, Any]:
        """The configuration as one JSON-ready event (logged once at start)."""
        limits = self.limits
        return {
            "app_kind": self.kind,
            **self.gunicorn_settings(),
            "worker_plan": self.workers.as_dict(),
            "container": {
                "memory_limit_mb": None if limits.memory_mb is None else round(limits.memory_mb),
                "memory_source": limits.memory_source,
                "cpus": limits.cpus,
                "cpu_count": limits.cpu_count,
                "cpu_source": limits.cpu_source,
                "cgroup": limits.version,
                "problems": list(limits.problems),
            },
        }


def plan_serving(
    settings: Settings,
    limits: ContainerLimits,
    kind: AppKind,
    *,
    master_rss_mb: float = 0.0,
    per_worker_mb: float | None = None,
) -> ServePlan:
    """The configuration for an app of ``kind`` in a container bounded by ``limits``.

    ``per_worker_mb``: a measured worker size (``fender workers --measure``), else
    FENDER_WORKER_MEMORY_MB.
    """
    worker_class = _worker_class(settings, kind)
    sources = {
        "cpus": limits.cpu_source,
        "memory_bytes": limits.memory_source,
        "per_worker_mb": "measured" if per_worker_mb is not None else "FENDER_WORKER_MEMORY_MB",
    }
    if settings.web_workers is not None:
        sources["override"] = _override_name()
    workers = plan_workers(
        WorkerInputs(
            cpus=limits.cpu_count,
            memory_bytes=limits.memory_bytes,
            per_worker_mb=per_worker_mb or settings.worker_memory_mb,
            kind="async" if worker_class == UVICORN_WORKER else "sync",
            master_rss_mb=master_rss_mb,
            override=settings.web_workers,
            sources=sources,
        )
    )
    return ServePlan(
        kind=kind,
        worker_class=worker_class,
        workers=workers,
        threads=settings.gunicorn_threads,
        bind=_bind(settings.host, settings.port),
        timeout=settings.timeout,
        graceful_timeout=settings.graceful_timeout,
        keepalive=settings.keepalive,
        max_requests=settings.max_requests,
        max_requests_jitter=settings.max_requests_jitter,
        preload=settings.preload,
        worker_tmp_dir=_SHM if Path(_SHM).is_dir() and os.access(_SHM, os.W_OK) else None,
        limits=limits,
    )


def _worker_class(settings: Settings, kind: AppKind) -> str:
    chosen = settings.worker_class
    if chosen == "uvicorn" or (chosen == "auto" and kind == "asgi"):
        return UVICORN_WORKER
    if chosen in ("auto", "gthread"):  # gthread, hardened against slow clients
        return THREAD_WORKER
    return chosen


def _override_name() -> str:
    return "WEB_WORKERS" if os.environ.get("WEB_WORKERS") else "GUNICORN_WORKERS"


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
