"""WSGI has no lifespan: a startup hook that fails on the first request must not leave the app
served half-started, nor stuck for ever."""

from __future__ import annotations

import types

import httpx
import orjson
from flask import Flask

from fender._clock import ManualClock
from fender.flask import Fender


def test_a_failing_startup_hook_is_a_json_503_then_retried(monkeypatch):
    clock = ManualClock()
    monkeypatch.setattr("fender.app._runtime.time", types.SimpleNamespace(monotonic=clock))
    app = Flask(__name__)

    @app.get("/x")
    def x() -> str:
        return "ok"

    runtime = Fender().init_app(app, env="development", health_interval=5)
    calls: list[int] = []

    @runtime.on_startup
    def migrate() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("db migration failed")

    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t")
    first = client.get("/x", headers={"X-Request-ID": "abcdefgh-1234"})
    assert first.status_code == 503
    assert orjson.loads(first.content) == {"error": "startup_failed", "request_id": "abcdefgh-1234"}
    assert first.headers["retry-after"] == "5"
    assert "db migration" not in first.text  # nothing about the cause
    live = client.get("/health/live")  # fender's own paths answer: liveness fails
    assert live.status_code == 503
    assert orjson.loads(live.content) == {
        "status": "fail",
        "output": "startup failed (RuntimeError)",
    }
    assert client.get("/health/ready").status_code == 503
    assert client.get("/x").status_code == 503
    assert len(calls) == 1  # not retried on every request
    clock.advance(5)
    assert client.get("/x").text == "ok"
    assert len(calls) == 2
    assert client.get("/health/live").status_code == 200
    assert client.get("/x").text == "ok"
    assert len(calls) == 2
