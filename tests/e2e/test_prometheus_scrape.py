"""A real Prometheus scrapes a real gunicorn (2 uvicorn workers): it sees every request once.

The counts of both workers must reach Prometheus summed, exactly, through fender's
multiprocess exposition, and the scrape target must be up (a valid exposition, served fast).
"""

from __future__ import annotations

import concurrent.futures
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers import CommandServer, PrometheusServer, running_prometheus, serving

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
JOB = "fender"
ROUTE = "/items/{item_id}"
SCRAPE_DEADLINE = 30.0

pytestmark = pytest.mark.e2e


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[CommandServer]:
    server = CommandServer(
        [
            str(BIN / "gunicorn"),
            "-c", "python:fender.runtime.gunicorn_conf",
            "--workers", "2",
            "--worker-class", "uvicorn_worker.UvicornWorker",
            "--bind", "127.0.0.1:{port}",
            "--graceful-timeout", "3",
            "served_apps:asgi",
        ],
        cwd=HERE,
        ready_path="/metrics",
        env={
            "FENDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "PYTHONPATH": str(HERE),
        },
    )  # fmt: skip
    with serving(server):
        yield server


@pytest.fixture
def prometheus(gunicorn: CommandServer, tmp_path: Path) -> Iterator[PrometheusServer]:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{gunicorn.port}']\n"
    )
    with running_prometheus(config, tmp_path) as server:
        yield server


def send_until_both_workers_answer(url: str) -> int:
    """Send requests to ``/items/{id}`` until both workers served some; return how many.

    Until a deadline, not a number of requests: the second worker may still be booting.
    """
    pids: set[int] = set()
    sent = 0

    def one(i: int) -> int:
        response = httpx.get(f"{url}/items/{i}", timeout=30)
        assert response.status_code == 200
        return int(response.json()["pid"])

    deadline = time.monotonic() + 60
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while len(pids) < 2 and time.monotonic() < deadline:
            pids.update(pool.map(one, range(sent, sent + 20)))
            sent += 20
    assert len(pids) == 2, "requests never reached both workers"
    return sent


def poll(prometheus: PrometheusServer, promql: str, expected: float) -> float | None:
    """Query until the single value equals ``expected`` or the deadline; return the last value."""
    deadline = time.monotonic() + SCRAPE_DEADLINE
    last: float | None = None
    while time.monotonic() < deadline:
        result = prometheus.query(promql)
        last = float(result[0]["value"][1]) if result else None  # type: ignore[index]
        if last == expected:
            return last
        if last is not None and last > expected:
            return last  # counted twice: waiting cannot fix it
        time.sleep(0.25)
    return last


def test_prometheus_sees_every_request_once(gunicorn, prometheus):
    sent = send_until_both_workers_answer(gunicorn.url)
    query = f'sum(http_server_request_duration_seconds_count{{route="{ROUTE}"}})'
    seen = poll(prometheus, query, sent)
    assert seen == sent, (
        f"Prometheus counted {seen} of {sent} requests\n"
        f"--- prometheus:\n{prometheus.output()[-2000:]}\n"
        f"--- gunicorn:\n{gunicorn.output()[-2000:]}"
    )
    target = f'up{{job="{JOB}"}}'
    # The latest scrape: one that a loaded machine let time out would say 0 until the next.
    deadline = time.monotonic() + SCRAPE_DEADLINE
    while not (up := prometheus.query(f"{target} == 1")) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert len(up) == 1, f"the scrape target is not up: {prometheus.query(target)}"
    assert up[0]["metric"]["instance"] == f"127.0.0.1:{gunicorn.port}"  # type: ignore[index]
