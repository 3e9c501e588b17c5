"""The drain flag: one file in the runtime directory shared by every worker of a server.

Under gunicorn, SIGTERM closes the listening socket at once, so readiness flipped inside the app
after SIGTERM is never seen by the load balancer. Draining therefore happens *before* SIGTERM:
``fender drain`` (a Kubernetes preStop hook) or ``POST /health/drain`` writes the flag, every
worker notices it within a poll interval and turns readiness to 503, and the hook waits
FENDER_DRAIN_SECONDS before the container gets its SIGTERM.

A flag older than the server itself (the gunicorn master, or this process when alone) is left
over from an earlier run and is ignored.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Final

__all__ = [
    "DRAIN_FILE",
    "clear_drain",
    "drain_flag",
    "is_draining",
    "request_drain",
    "server_started_at",
]

DRAIN_FILE: Final = "drain"


def drain_flag(runtime_dir: str | Path) -> Path:
    """Path of the drain flag in ``runtime_dir``."""
    return Path(runtime_dir) / DRAIN_FILE


def request_drain(runtime_dir: str | Path, reason: str = "drain requested") -> Path:
    """Write the drain flag (atomically) and return its path."""
    directory = Path(runtime_dir)
    directory.mkdir(parents=True, exist_ok=True)
    flag = drain_flag(directory)
    temporary = flag.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(f"{time.time():.3f} {reason}\n", encoding="utf-8")
    temporary.replace(flag)
    return flag


def clear_drain(runtime_dir: str | Path) -> None:
    """Remove the drain flag (at the start of a new server)."""
    drain_flag(runtime_dir).unlink(missing_ok=True)


@functools.cache
def _started_at(pid: int) -> float:  # noqa: ARG001  (the cache key: a forked worker recomputes)
    import psutil

    process = psutil.Process()
    if os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        try:
            return float(psutil.Process(os.getppid()).create_time())
        except psutil.Error:
            pass
    return float(process.create_time())


def server_started_at() -> float:
    """Epoch seconds when this server began: the gunicorn master's start, else this process's.

    Computed once per process (a forked worker computes its own).
    """
    return _started_at(os.getpid())


def is_draining(runtime_dir: str | Path, started_at: float) -> bool:
    """True when a drain flag newer than ``started_at`` exists."""
    try:
        return drain_flag(runtime_dir).stat().st_mtime >= started_at
    except FileNotFoundError:
        return False
