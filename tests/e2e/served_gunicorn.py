"""gunicorn with fender's config and two workers over served_apps, as the e2e tests start it."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from servers import CommandServer

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
BIN = Path(sys.executable).parent

WORKERS = {
    "uvicorn": ("fender.runtime.uvicorn_worker.UvicornWorker", "served_apps:asgi"),
    "sync": ("sync", "served_apps:wsgi"),
}


def gunicorn(worker: str, tmp_path: Path, **env: str) -> CommandServer:
    worker_class, app = WORKERS[worker]
    return CommandServer(
        [
            str(BIN / "gunicorn"),
            "-c", "python:fender.runtime.gunicorn_conf",
            "--workers", "2",
            "--worker-class", worker_class,
            "--bind", "127.0.0.1:{port}",
            "--graceful-timeout", "5",
            app,
        ],
        cwd=HERE,
        ready_path="/metrics",  # fender's own endpoint: not in the access log
        env={
            "FENDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "FENDER_TEST_PIDFILE": str(tmp_path / "hang.pid"),
            # Counts exact at every scrape: no rendering reused (FENDER_METRICS_CACHE_SECONDS).
            "FENDER_METRICS_CACHE_SECONDS": "0",
            "PROMETHEUS_MULTIPROC_DIR": "",
            "PYTHONPATH": f"{SRC}{os.pathsep}{HERE}",  # this checkout's fender, served_apps
            **env,
        },
    )  # fmt: skip
