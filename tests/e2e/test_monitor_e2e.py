"""The monitor under `fender run`: two real workers, one /status, alerts said once.

Traffic with injected 5xx goes to both workers of a FastAPI app (uvicorn workers) and of a
Flask app (gthread workers); /status, asked of whichever worker, counts every request of both,
fires the error-rate alert (its ``for`` set to 0 here: the manual-clock tests time it) and
resolves it once the last minute is clean again. Only one worker evaluates: each transition
is one log line and one metric, not one per worker. Headless Chromium shows the live page with
its sparklines and the alert, with no console error and no CSP violation (screenshot kept).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import ARTIFACTS, load
from servers import CommandServer, free_port, serving, wait_for

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TOKEN = secrets.token_urlsafe(32)
APPS = {"fastapi": "monitor_apps:asgi", "flask": "monitor_apps:wsgi"}

pytestmark = pytest.mark.e2e


def fender_run(tmp_path: Path, app: str) -> CommandServer:
    """`fender run app` with two workers (started by ``serving``)."""
    port = free_port()
    return CommandServer(
        [str(BIN / "fender"), "run", app],
        port=port,
        cwd=HERE,
        env={
            "FENDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "FENDER_ADMIN_TOKEN": TOKEN,
            "FENDER_ADMIN_CIDRS": "127.0.0.1/32",  # the browser sends no token
            "WEB_WORKERS": "2",
            "MEMORY_LIMIT_MB": "1024",
            "FENDER_HOST": "127.0.0.1",
            "FENDER_PORT": str(port),
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "FENDER_RATE_LIMIT_PATHS": "/limited=2/minute",
            "FENDER_ALERT_ERROR_RATE_FOR": "0",
            # the app modules, then the fender under test (the caller's PYTHONPATH)
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            "HOME": str(tmp_path / "home"),
        },
        ready_path="/health/ready",
    )


def status(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/status", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def events(server: CommandServer, name: str) -> list[dict[str, Any]]:
    found = []
    for line in server.output().splitlines():
        if f'"{name}"' in line and line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def send(url: str, paths: list[str]) -> set[int]:
    """GET every path, 8 at a time, each on a new connection (so that both workers serve:
    a kept-alive connection stays with the worker that accepted it); the pids that answered."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with (
        httpx.Client(base_url=url, timeout=10, limits=no_reuse) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        answers = list(pool.map(client.get, paths))
    return {a.json()["pid"] for a in answers if a.status_code == 200 and "pid" in a.json()}


@pytest.mark.parametrize("kind", list(APPS))
def test_status_speaks_for_every_worker_and_an_alert_fires_and_resolves_once(tmp_path, kind):
    server = fender_run(tmp_path, APPS[kind])
    with serving(server), httpx.Client(base_url=server.url, timeout=10) as client:
        pids = send(server.url, ["/boom"] * 20)
        sent = 20
        while len(pids) < 2 and sent < 1000:  # until both workers served (the kernel picks)
            pids |= send(server.url, [f"/items/{n}" for n in range(40)])
            sent += 40
        limited = [client.get("/limited").status_code for _ in range(3)]
        rejected = limited.count(429)
        wait_for(
            lambda: status(client)["traffic"]["windows"]["1m"]["requests"] == sent + 3,
            30,
            "every request counted",
        )
        traffic = status(client)["traffic"]
        assert traffic["workers"] == len(pids) == 2
        minute = traffic["windows"]["1m"]
        assert minute["errors"] == 20
        assert minute["rate_limited"] == rejected >= 1
        routes = {r["route"] for r in traffic["slowest_routes"]}
        assert {"/boom", "/items/{item_id}"} <= routes
        wait_for(
            lambda: [a["name"] for a in status(client)["alerts"]["active"]] == ["error_rate"],
            30,
            "the error-rate alert firing",
        )
        metrics = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text
        assert 'fender_alerts_fired_total{alert="error_rate",severity="critical"} 1.0' in metrics
        # 20 errors among 500 more requests: under 5% of the minute
        send(server.url, [f"/items/{n}" for n in range(500)])
        wait_for(
            lambda: [a["name"] for a in status(client)["alerts"]["resolved"]] == ["error_rate"],
            30,
            "the error-rate alert resolved",
        )
        assert status(client)["alerts"]["active"] == []
        wait_for(lambda: len(events(server, "alert_resolved")) == 1, 10, "the resolved event")
        (fired,) = events(server, "alert_firing")
        assert fired["alert"] == "error_rate"
        assert fired["severity"] == "critical"


def test_the_live_status_page_in_chromium(tmp_path):
    server = fender_run(tmp_path, APPS["fastapi"])
    with serving(server), httpx.Client(base_url=server.url, timeout=10) as client:
        send(server.url, [f"/items/{n}" for n in range(60)] + ["/boom"] * 20)
        wait_for(
            lambda: status(client)["alerts"]["active"] != [], 30, "the error-rate alert firing"
        )
        page = load(
            f"{server.url}/status",
            tmp_path / "profile",
            screenshot=ARTIFACTS / "status_page_live.png",
        )
    assert page.problems == [], page.log[-3000:]
    assert "error_rate" in page.dom
    assert page.dom.count("<svg") >= 4
    assert "/items/{item_id}" in page.dom
    assert page.screenshot is not None
    assert page.screenshot.stat().st_size > 10_000
