"""Real gunicorn, two workers: metrics add up, gauges of a killed worker vanish, logs are JSON."""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from fender.observability._metrics import auto_dir

from served_gunicorn import BIN, HERE, WORKERS, gunicorn
from servers import CommandServer, missing, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(params=list(WORKERS))
def server(request, tmp_path):
    process = gunicorn(request.param, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    process.start()
    yield process
    process.terminate()
    process.close()


def metric(body: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in body.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(url: str) -> str:
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    return response.text


ITEMS = "/items/{item_id}"


def requests_counted(url: str) -> float:
    return metric(scrape(url), "http_server_request_duration_seconds_count", route=ITEMS)


def all_counted(url: str, sent: int) -> None:
    """Each worker folds its counts into the shared files every 250 ms (and the
    scraping worker at the scrape): soon every scrape, whichever worker answers, sees every
    request (waited for generously: a loaded machine runs the folding threads late)."""
    wait_for(lambda: requests_counted(url) == sent, 60, f"a count of {sent} requests")
    for _ in range(6):
        assert requests_counted(url) == sent


def until_both_workers_answer(url: str) -> int:
    """Send requests to ``/items/{id}`` until both workers served some; return how many.

    Ready means one worker answers: the other may still be booting on a loaded machine, so
    this sends batches until a deadline rather than a fixed number of them.
    """
    pids: set[int] = set()
    sent = 0

    def one(i: int) -> int:
        return httpx.get(f"{url}/items/{i}", timeout=30).json()["pid"]

    deadline = time.monotonic() + 60
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while len(pids) < 2 and time.monotonic() < deadline:
            pids.update(pool.map(one, range(sent, sent + 40)))
            sent += 40
    assert len(pids) == 2, "requests never reached both workers"
    return sent


def test_counts_add_up_across_workers(server):
    sent = until_both_workers_answer(server.url)
    all_counted(server.url, sent)
    body = scrape(server.url)
    # Live gauges are combined, not one series per worker; only the process metrics are per pid.
    per_pid = [line for line in body.splitlines() if 'pid="' in line]
    assert per_pid
    assert all(line.startswith("process_") for line in per_pid), per_pid[:5]


def test_process_metrics_of_every_worker_and_the_master(server):
    until_both_workers_answer(server.url)
    body = scrape(server.url)
    rss = [line for line in body.splitlines() if line.startswith("process_resident_memory_bytes{")]
    roles = sorted(line.split('role="', 1)[1].split('"', 1)[0] for line in rss)
    assert roles == ["master", "worker", "worker"], rss
    for name in ("process_cpu_seconds_total{", "process_open_fds{", "process_start_time_seconds{"):
        assert sum(line.startswith(name) for line in body.splitlines()) == 3, name


def test_promtool_accepts_the_exposition(server):
    promtool = (
        BIN.parent / "promtool" if (BIN.parent / "promtool").exists() else Path("/usr/bin/promtool")
    )
    if not promtool.exists():
        missing("promtool (Debian package prometheus)")
    httpx.get(f"{server.url}/items/1", timeout=30)
    body = httpx.get(f"{server.url}/metrics", timeout=30).content
    result = subprocess.run(
        [str(promtool), "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    # promtool lints the Prometheus text format only; the OpenMetrics answer is checked by
    # the reference parser, which rejects any deviation from the spec.
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
    text = httpx.get(f"{server.url}/metrics", headers=accept, timeout=30).text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"http_server_request_duration_seconds", "fender_lifecycle_state"} <= names


def test_a_killed_worker_leaves_no_stale_gauge(server, tmp_path):
    pidfile = tmp_path / "hang.pid"
    outcome: list[BaseException] = []

    def hang() -> None:
        try:
            httpx.get(f"{server.url}/hang", timeout=40)
        except httpx.HTTPError as exc:  # the worker dies under it: the connection drops
            outcome.append(exc)

    hanging = threading.Thread(target=hang, daemon=True)
    hanging.start()
    wait_for(pidfile.exists, 60, "the hanging request")
    wait_for(
        lambda: metric(scrape(server.url), "http_server_active_requests", method="GET") == 1,
        60,
        "the in-flight gauge",
    )
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    wait_for(
        lambda: metric(scrape(server.url), "http_server_active_requests", method="GET") == 0,
        60,
        "the dead worker's gauge to vanish",
    )
    hanging.join(45)
    assert len(outcome) == 1


def test_every_output_line_is_json_including_gunicorns_own(server):
    httpx.get(f"{server.url}/items/1", timeout=30)
    httpx.get(f"{server.url}/nope", timeout=30)
    server.terminate()
    lines = [line for line in server.output().splitlines() if line.strip()]
    events = [orjson.loads(line) for line in lines]  # raises on any non-JSON line
    messages = " | ".join(str(e.get("event")) for e in events)
    assert re.search(r"Starting gunicorn", messages)
    assert re.search(r"Booting worker", messages)
    access = [e for e in events if e.get("event") == "request"]
    assert {(e["route"], e["status"]) for e in access} == {
        ("/items/{item_id}", 200),
        ("unmatched", 404),
    }
    for event in access:
        assert {
            "timestamp",
            "level",
            "request_id",
            "method",
            "duration_ms",
            "bytes",
            "client",
        } <= set(event)


def test_multiprocess_mode_switches_on_by_itself(tmp_path):
    """No gunicorn_conf, no PROMETHEUS_MULTIPROC_DIR: still one truth across workers."""
    worker_class, app = WORKERS["uvicorn"]
    process = CommandServer(
        [str(BIN / "gunicorn"), "--workers", "2", "--worker-class", worker_class,
         "--bind", "127.0.0.1:{port}", "--graceful-timeout", "3", app],
        cwd=HERE,
        env={"FENDER_ENV": "development", "PYTHONPATH": str(HERE), "PROMETHEUS_MULTIPROC_DIR": "",
             "FENDER_METRICS_CACHE_SECONDS": "0"},
    )  # fmt: skip
    process.start()
    try:
        sent = until_both_workers_answer(process.url)
        all_counted(process.url, sent)
    finally:
        master = process.pid
        process.terminate()
        process.close()
        # the directory fender chose, named after the master (no gunicorn_conf to remove it)
        shutil.rmtree(auto_dir(master), ignore_errors=True)


@pytest.mark.parametrize("worker", list(WORKERS))
def test_server_access_lines_on_request_in_fenders_format(worker, tmp_path):
    process = gunicorn(worker, tmp_path, FENDER_SERVER_ACCESS_LOG="true")
    process.start()
    try:
        httpx.get(f"{process.url}/items/1", timeout=30)
        process.terminate()
        output = process.output()
    finally:
        process.close()
    events = [orjson.loads(line) for line in output.splitlines() if line.strip()]
    server_lines = [e for e in events if e.get("logger") in ("gunicorn.access", "uvicorn.access")]
    assert any("/items/1" in str(e.get("event")) for e in server_lines), events[-5:]
    assert [e for e in events if e.get("event") == "request"]  # fender's own line as well
