"""The serving settings: `fender run`, gunicorn's numbers, the memory guard, the database.

A mixin of :class:`~fender.settings.Settings`, as :mod:`fender.settings._security` is. The
names are the ones deploy files already use (``PORT``, ``WEB_WORKERS``, ``GUNICORN_*``).
"""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings

from fender.settings._fields import env_field

__all__ = ["ServingFields"]


class ServingFields(BaseSettings):
    """Fields of issue 12: bind, workers, gunicorn timeouts, memory thresholds, the database."""

    host: str = env_field(
        "FENDER_HOST",
        default="0.0.0.0",  # noqa: S104  (a container's port is reached from outside it)
        min_length=1,
        description="Address `fender run` binds (0.0.0.0 in a container; 127.0.0.1 on a "
        "shared host).",
    )
    port: int = env_field(
        "FENDER_PORT",
        "PORT",
        default=8000,
        ge=1,
        le=65535,
        description="Port `fender run` binds (PORT as PaaS hosts set it).",
    )
    web_workers: int | None = env_field(
        "WEB_WORKERS",
        "GUNICORN_WORKERS",
        default=None,
        ge=1,
        le=1024,
        description="Worker processes; empty: min(CPU formula, memory budget), see `fender "
        "workers`. Capped, with a warning, where it would not fit in memory.",
    )
    gunicorn_threads: int = env_field(
        "GUNICORN_THREADS",
        default=4,
        ge=1,
        le=256,
        description="Threads per WSGI worker (gthread): a slow client holds a thread, not the "
        "worker.",
    )
    worker_class: Literal["auto", "sync", "gthread", "uvicorn"] = env_field(
        "FENDER_WORKER_CLASS",
        default="auto",
        description="Worker class: auto (fender's uvicorn worker for ASGI, gthread for WSGI), "
        "sync, gthread or uvicorn.",
    )
    worker_memory_mb: float = env_field(
        "FENDER_WORKER_MEMORY_MB",
        default=128.0,
        gt=0,
        le=1024 * 1024,
        description="Resident MiB one worker needs, for the worker count (`fender workers "
        "--measure app:app` measures it).",
    )
    timeout: int = env_field(
        "GUNICORN_TIMEOUT",
        default=120,
        ge=1,
        le=3600,
        description="Seconds a worker may be silent before gunicorn kills it.",
    )
    graceful_timeout: int = env_field(
        "GUNICORN_GRACEFUL_TIMEOUT",
        default=30,
        ge=1,
        le=3600,
        description="Seconds in-flight requests get to finish on SIGTERM (keep "
        "terminationGracePeriodSeconds above it).",
    )
    keepalive: int = env_field(
        "GUNICORN_KEEPALIVE",
        default=5,
        ge=0,
        le=3600,
        description="Seconds an idle keep-alive connection stays open; 65 behind a load "
        "balancer that keeps idle connections 60 s.",
    )
    max_requests: int = env_field(
        "GUNICORN_MAX_REQUESTS",
        default=1000,
        ge=0,
        description="Requests after which a worker is replaced (0: never); bounds slow leaks.",
    )
    max_requests_jitter: int = env_field(
        "GUNICORN_MAX_REQUESTS_JITTER",
        default=100,
        ge=0,
        description="Random extra requests per worker, so workers do not restart together.",
    )
    preload: bool = env_field(
        "GUNICORN_PRELOAD",
        default=False,
        description="Import the app in the master before forking (shared pages; gc.freeze()).",
    )
    memory_collect_percent: float = env_field(
        "FENDER_MEMORY_COLLECT_PERCENT",
        default=75.0,
        gt=0,
        lt=100,
        description="A worker above this share of its memory collects garbage and warns.",
    )
    memory_critical_percent: float = env_field(
        "FENDER_MEMORY_CRITICAL_PERCENT",
        default=85.0,
        gt=0,
        le=100,
        description="A worker above this share of its memory finishes its requests and recycles.",
    )
    memory_check_interval: float = env_field(
        "FENDER_MEMORY_CHECK_INTERVAL",
        default=5.0,
        ge=0,
        le=3600,
        description="Seconds between two memory samples of a worker; 0 turns the guard off.",
    )
    request_head_timeout: float = env_field(
        "FENDER_REQUEST_HEAD_TIMEOUT",
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a whole request head to fender's threaded "
        "worker (408 after).",
    )
    body_read_timeout: float = env_field(
        "FENDER_BODY_READ_TIMEOUT",
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds one read of a request body may wait in fender's threaded worker.",
    )
    slow_query_ms: float = env_field(
        "FENDER_SLOW_QUERY_MS",
        default=500.0,
        gt=0,
        description="Database queries slower than this are a slow_query event and counted.",
    )
    alembic_config: str = env_field(
        "FENDER_ALEMBIC_CONFIG",
        default="alembic.ini",
        description="Alembic config of the app's migrations; when the file exists, readiness "
        "and `fender doctor` say whether the database is at head. Empty: no such check.",
    )
