"""Apps built, started and dropped the way a test suite does it: no leak, a second start works."""

from __future__ import annotations

import asyncio
import gc
import threading

import httpx
from fastapi import FastAPI
from flask import Flask

import fender
from fender.flask import Fender

from conftest import serve


def _fender_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fender-")]


def _flask_factory() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        return "ok"

    Fender(app, env="development")
    return app


def test_an_app_factory_called_per_test_leaves_no_threads_behind():
    before = set(threading.enumerate())  # earlier tests' apps may still be held by fixtures
    for _ in range(50):
        app = _flask_factory()
        assert app.test_client().get("/").status_code == 200
    del app
    gc.collect()
    new = [t for t in _fender_threads() if t not in before]
    # The health loops of the dropped apps stop once their registries are collected: wait for
    # those threads to end (an event), then count. What may stay is shared by the process.
    process_wide = {"fender-drain-watch", "fender-memory", "fender-monitor"}
    for thread in new:
        if thread.name not in process_wide:
            thread.join(timeout=10)
    alive = [t.name for t in new if t.is_alive()]
    assert set(alive) <= process_wide, alive
    assert len(alive) == len(set(alive)), alive


def test_dropped_apps_leave_no_listener_on_the_shared_rate_limit_breaker():
    from fender.resilience import default_registry

    _flask_factory()
    gc.collect()
    breaker = default_registry.get("ratelimit")
    before = len(breaker._transition_listeners)
    for _ in range(20):
        _flask_factory()
    gc.collect()
    assert len(breaker._transition_listeners) <= before


def test_a_fastapi_app_started_twice_is_ready_again_with_fresh_counts():
    app = FastAPI()

    @app.get("/items")
    async def items() -> list[int]:
        return []

    fender.install(app, env="development", rate_limit="2/minute")

    async def one_lifespan(client: httpx.AsyncClient) -> list[int]:
        statuses = [(await client.get("/health/ready")).status_code]
        statuses.extend([(await client.get("/items")).status_code for _ in range(3)])
        return statuses

    assert serve(app, one_lifespan) == [200, 200, 200, 429]
    assert serve(app, one_lifespan) == [200, 200, 200, 429]


def test_a_wsgi_app_first_called_from_a_running_event_loop_starts():
    app = _flask_factory()

    async def call_from_a_coroutine() -> int:
        # An async test (or a notebook) calling Flask's test client: this thread's loop runs.
        return app.test_client().get("/").status_code

    assert asyncio.run(call_from_a_coroutine()) == 200
    assert app.test_client().get("/health/ready").status_code == 200
    # The health refresher runs on the registry's own loop, not on the test's, now closed.
    health = app.extensions["fender"].health
    refresher_loop, task = health._refresher._running
    assert refresher_loop is health._private.current
    assert not task.done()


def test_a_wsgi_app_shut_down_and_used_again_starts_again():
    app = _flask_factory()
    client = app.test_client()
    assert client.get("/health/ready").status_code == 200
    app.extensions["fender"].shutdown_sync()
    assert client.get("/").status_code == 200
    assert client.get("/health/ready").status_code == 200
