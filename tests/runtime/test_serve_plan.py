"""The server configuration `fender run`, gunicorn_conf and `fender workers` share."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from flask import Flask

from fender.runtime._container import ContainerLimits
from fender.runtime._serve import THREAD_WORKER, UVICORN_WORKER, app_kind, plan_serving
from fender.settings import load_settings

MIB = 2**20


def limits(memory_mb: float | None = 512, cpus: float | None = None, affinity: int = 64):
    return ContainerLimits(
        memory_bytes=None if memory_mb is None else int(memory_mb * MIB),
        memory_source="fixture",
        cpus=cpus,
        cpu_source="fixture",
        affinity=affinity,
        host_memory_bytes=None,
        version="v2",
    )


def settings(**env: str):
    return load_settings(env, env_file=None)


async def bare_asgi(scope, receive, send):
    pass


def bare_wsgi(environ, start_response):
    return []


class AsgiClass:
    async def __call__(self, scope, receive, send):
        pass


@pytest.mark.parametrize(
    ("app", "kind"),
    [
        (FastAPI(), "asgi"),
        (Flask(__name__), "wsgi"),
        (bare_asgi, "asgi"),
        (bare_wsgi, "wsgi"),
        (AsgiClass(), "asgi"),
    ],
    ids=["fastapi", "flask", "asgi-function", "wsgi-function", "asgi-class"],
)
def test_app_kind(app, kind):
    assert app_kind(app) == kind


def test_asgi_on_a_big_host_in_512_mib():
    plan = plan_serving(settings(), limits(512), "asgi", master_rss_mb=30)
    values = plan.gunicorn_settings()
    assert values["worker_class"] == UVICORN_WORKER
    assert values["workers"] == 2  # floor((384 - 30) / 128), not 65
    assert plan.workers.reason == "memory"
    assert values["bind"] == ["0.0.0.0:8000"]
    assert values["control_socket_disable"] is True
    assert (values["timeout"], values["graceful_timeout"], values["keepalive"]) == (120, 30, 5)
    assert (values["max_requests"], values["max_requests_jitter"]) == (1000, 100)
    assert "threads" not in values


def test_wsgi_gets_gthread_with_threads():
    plan = plan_serving(settings(GUNICORN_THREADS="8"), limits(4096, cpus=1.0), "wsgi")
    values = plan.gunicorn_settings()
    assert (values["worker_class"], values["threads"], values["workers"]) == (THREAD_WORKER, 8, 3)


def test_overrides_from_the_environment():
    plan = plan_serving(
        settings(
            FENDER_HOST="::1",
            PORT="9000",
            FENDER_WORKER_CLASS="sync",
            GUNICORN_TIMEOUT="30",
            GUNICORN_KEEPALIVE="65",
            GUNICORN_PRELOAD="true",
        ),
        limits(None, cpus=2.0),
        "wsgi",
    )
    values = plan.gunicorn_settings()
    assert values["bind"] == ["[::1]:9000"]
    assert values["worker_class"] == "sync"
    assert "threads" not in values
    assert (values["timeout"], values["keepalive"], values["preload_app"]) == (30, 65, True)
    assert values["workers"] == 5


def test_web_workers_over_budget_is_capped_and_named(monkeypatch):
    monkeypatch.setenv("WEB_WORKERS", "33")
    plan = plan_serving(settings(WEB_WORKERS="33"), limits(512), "asgi", master_rss_mb=30)
    assert plan.workers.workers == 2
    assert plan.workers.inputs.sources["override"] == "WEB_WORKERS"
    assert plan.workers.warnings


def test_measured_worker_size_wins():
    plan = plan_serving(settings(), limits(1024), "asgi", per_worker_mb=256)
    assert plan.workers.memory_workers == 3
    assert plan.workers.inputs.sources["per_worker_mb"] == "measured"


def test_event_describes_the_container():
    event = plan_serving(settings(), limits(512), "asgi").as_event()
    assert event["app_kind"] == "asgi"
    assert event["container"]["memory_limit_mb"] == 512
    assert event["worker_plan"]["workers"] == event["workers"]
