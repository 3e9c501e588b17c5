"""/metrics: one rendering reused for FENDER_METRICS_CACHE_SECONDS, and protected on request.

The adversarial pass: 8 scrapers of a 445 kB exposition made every request 300 times slower,
since each scrape rendered it again. Here a collector counts the renderings, and a manual
clock (never a sleep) moves time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

import fender
from fender._clock import ManualClock
from fender.http.admin import AdminGuard
from fender.http.endpoints import Request, drive_async, drive_sync
from fender.http.metrics import MetricsEndpoint
from fender.ratelimit._clientip import ClientIPResolver
from fender.settings import load_settings

TOKEN = secrets.token_urlsafe(32)
OPENMETRICS = {"accept": "application/openmetrics-text; version=1.0.0"}


class Renderings:
    """A collector that counts how often the exposition is rendered."""

    def __init__(self) -> None:
        self.count = 0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.count += 1
        yield GaugeMetricFamily("test_renderings", "renderings so far", value=self.count)


@pytest.fixture
def renderings() -> Iterator[Renderings]:
    collector = Renderings()
    REGISTRY.register(collector)  # type: ignore[arg-type]
    collector.count = 0  # registering collected once, to learn the names
    try:
        yield collector
    finally:
        REGISTRY.unregister(collector)  # type: ignore[arg-type]


def endpoint(clock: ManualClock, **env: str) -> MetricsEndpoint:
    settings = load_settings({"FENDER_ENV": "development", **env}, env_file=None)
    return MetricsEndpoint(settings, AdminGuard(settings, ClientIPResolver()), clock=clock)


def scrape(metrics: MetricsEndpoint, headers: dict[str, str] | None = None) -> bytes:
    request = Request("GET", "/metrics", headers or {}, client="127.0.0.1")
    return drive_sync(metrics(request)).body


def test_scrapes_within_the_interval_reuse_one_rendering(renderings):
    clock = ManualClock()
    metrics = endpoint(clock, FENDER_METRICS_CACHE_SECONDS="2")
    bodies = [scrape(metrics) for _ in range(8)]
    assert renderings.count == 1
    assert len(set(bodies)) == 1
    clock.advance(1.9)
    scrape(metrics)
    assert renderings.count == 1
    clock.advance(0.1)
    assert b"test_renderings 2.0" in scrape(metrics)  # a fresh rendering's value
    assert renderings.count == 2


def test_each_format_has_its_own_rendering(renderings):
    metrics = endpoint(ManualClock())
    text = scrape(metrics)
    openmetrics = scrape(metrics, OPENMETRICS)
    assert renderings.count == 2
    assert openmetrics.rstrip().endswith(b"# EOF")
    assert not text.rstrip().endswith(b"# EOF")
    scrape(metrics)
    scrape(metrics, OPENMETRICS)
    assert renderings.count == 2


def test_a_zero_interval_renders_every_scrape(renderings):
    metrics = endpoint(ManualClock(), FENDER_METRICS_CACHE_SECONDS="0")
    for _ in range(3):
        scrape(metrics)
    assert renderings.count == 3


def test_scrapers_arriving_together_share_a_rendering(renderings):
    metrics = endpoint(ManualClock())
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: scrape(metrics), range(8)))
    assert renderings.count == 1
    assert len(set(bodies)) == 1


def test_the_async_driver_reuses_the_rendering_too(renderings):
    metrics = endpoint(ManualClock())
    request = Request("GET", "/metrics", {}, client="127.0.0.1")

    async def twice() -> None:
        await drive_async(metrics(request))
        await drive_async(metrics(request))

    asyncio.run(twice())
    assert renderings.count == 1


# --- protection, through real apps --------------------------------------------------------------


def fastapi_app(**options):
    from fastapi import FastAPI

    app = FastAPI()
    fender.install(app, env="development", admin_token=TOKEN, **options)
    return app


async def _requests(app, calls, client):
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return [await http.request(method, "/metrics", headers=h) for method, h in calls]


def requests(app, *calls, client=("192.0.2.7", 4000)):
    return asyncio.run(_requests(app, calls, client))


def test_metrics_are_public_by_default():
    (answer,) = requests(fastapi_app(), ("GET", {}))
    assert answer.status_code == 200


def test_protected_metrics_need_the_token_or_the_network():
    app = fastapi_app(metrics_protected=True, admin_cidrs="10.0.0.0/8")
    anonymous, post, token = requests(
        app, ("GET", {}), ("POST", {}), ("GET", {"Authorization": f"Bearer {TOKEN}"})
    )
    assert (anonymous.status_code, post.status_code, token.status_code) == (404, 404, 200)
    assert anonymous.json()["error"] == "not_found"
    assert "allow" not in post.headers
    (inside,) = requests(app, ("GET", {"Host": "10.0.0.9:8000"}), client=("10.1.2.3", 4000))
    assert inside.status_code == 200
    assert b"http_server_request_duration_seconds" in inside.content


def test_protected_metrics_on_flask():
    from flask import Flask

    from fender.flask import Fender

    app = Flask(__name__)
    Fender(app, env="development", admin_token=TOKEN, metrics_protected=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://x") as client:
        assert client.get("/metrics").status_code == 404
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/metrics", headers=auth).status_code == 200


def test_hidden_versions_leave_the_public_exposition():
    (hidden,) = requests(fastapi_app(hide_versions=True), ("GET", {}))
    assert b'python="hidden"' in hidden.content
    assert b'fender="hidden"' in hidden.content
    assert b"python_info" not in hidden.content
    # protected, only the admin reads it: the versions are there
    app = fastapi_app(hide_versions=True, metrics_protected=True)
    (shown,) = requests(app, ("GET", {"Authorization": f"Bearer {TOKEN}"}))
    assert b'python="hidden"' not in shown.content
    assert b"python_info" in shown.content


def test_testing_mode_renders_every_scrape_unless_asked(renderings):
    requests(fastapi_app(testing=True), ("GET", {}), ("GET", {}))
    assert renderings.count == 2
    requests(fastapi_app(testing=True, metrics_cache_seconds=5), ("GET", {}), ("GET", {}))
    assert renderings.count == 3
    requests(fastapi_app(testing=False), ("GET", {}), ("GET", {}))  # the default: 1 s
    assert renderings.count == 4
