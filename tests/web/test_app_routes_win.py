"""An app's own routes at fender's paths are kept, and fender says it gave its endpoint up."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, FastAPI
from flask import Flask

import fender
from fender.flask import Fender
from fender.testing import capture_logs


def test_a_flask_apps_own_status_and_health_are_kept():
    app = Flask(__name__)

    @app.get("/status")
    def status() -> dict[str, str]:
        return {"mine": "status"}

    with capture_logs() as logs:
        Fender(app, env="development")

        @app.get("/health")  # added after init_app, as a factory registering blueprints late
        def health() -> dict[str, str]:
            return {"mine": "health"}

        client = app.test_client()
        assert client.get("/status").get_json() == {"mine": "status"}
        assert client.get("/health").get_json() == {"mine": "health"}
        assert client.get("/health/live").status_code == 200  # the rest of fender's stay
    shadowed = {e["path"]: e for e in logs.events if e["event"] == "endpoint_shadowed"}
    assert set(shadowed) == {"/status", "/health"}
    assert "FENDER_HEALTH_PREFIX" in shadowed["/health"]["fix"]


def test_a_fastapi_apps_own_routes_are_kept_even_when_declared_after_install():
    app = FastAPI()
    router = APIRouter()

    @router.get("/metrics")
    async def my_metrics() -> dict[str, str]:
        return {"mine": "metrics"}

    with capture_logs() as logs:
        fender.install(app, env="development")

        @app.get("/status")  # after install, as in most modules
        async def status() -> dict[str, str]:
            return {"mine": "status"}

        app.include_router(router, prefix="")

        async def call() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return [await client.get(p) for p in ("/status", "/metrics", "/health/live")]

        status_page, metrics, live = asyncio.run(call())
    assert status_page.json() == {"mine": "status"}
    assert metrics.json() == {"mine": "metrics"}
    assert live.status_code == 200
    shadowed = {e["path"]: e for e in logs.events if e["event"] == "endpoint_shadowed"}
    assert set(shadowed) == {"/status", "/metrics"}
    assert "FENDER_METRICS_PATH" in shadowed["/metrics"]["fix"]
