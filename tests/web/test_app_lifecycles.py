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
    for thread in new:
        if thread.name != "fender-drain-watch":
            thread.join(timeout=10)
    alive = [t.name for t in new if t.is_alive()]
    assert len(alive) <= 1, alive


def test_a_fastapi_app_started_twice_is_ready_again_with_fresh_counts():
    app = FastAPI()

    @app.get("/items")
    async def items() -> list[int]:
        return []

    fender.install(app, env="development", rate_limit="2/minute")

    async def one_lifespan() -> list[int]:
        statuses: list[int] = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            lifespan = _Lifespan(app)
            await lifespan.start()
            try:
                statuses.append((await client.get("/health/ready")).status_code)
                statuses.extend([(await client.get("/items")).status_code for _ in range(3)])
            finally:
                await lifespan.stop()
        return statuses

    assert asyncio.run(one_lifespan()) == [200, 200, 200, 429]
    assert asyncio.run(one_lifespan()) == [200, 200, 200, 429]


def test_a_wsgi_app_first_called_from_a_running_event_loop_starts():
    app = _flask_factory()

    async def call_from_a_coroutine() -> int:
        # An async test (or a notebook) calling Flask's test client: this thread's loop runs.
        return app.test_client().get("/").status_code

    assert asyncio.run(call_from_a_coroutine()) == 200
    assert app.test_client().get("/health/ready").status_code == 200


class _Lifespan:
    """Drives an ASGI app's lifespan protocol, as a server (or TestClient) does."""

    def __init__(self, app: object) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(
            self.app({"type": "lifespan"}, self.inbox.get, self.outbox.put)  # type: ignore[operator]
        )
        await self.inbox.put({"type": "lifespan.startup"})
        assert (await self.outbox.get())["type"] == "lifespan.startup.complete"

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        assert (await self.outbox.get())["type"] == "lifespan.shutdown.complete"
        assert self.task is not None
        await self.task
