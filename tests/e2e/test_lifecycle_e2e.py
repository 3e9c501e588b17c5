"""Real gunicorn: SIGTERM drops nothing in flight; drain turns every worker unready; /status.

The status page is loaded in headless Chromium.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from browser import ARTIFACTS, load
from servers import CommandServer, wait_for

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.e2e

WORKERS = {
    "uvicorn": [
        "--worker-class",
        "fender.runtime.uvicorn_worker.UvicornWorker",
        "served_apps:asgi",
    ],
    # More threads than the 20 held requests: a worker holding them all still answers /metrics.
    "gthread": ["--worker-class", "gthread", "--threads", "24", "served_apps:wsgi"],
}


def gunicorn(worker: str, tmp_path: Path, *, graceful: int = 10, **env: str) -> CommandServer:
    (tmp_path / "markers").mkdir(exist_ok=True)
    return CommandServer(
        [
            str(BIN / "gunicorn"),
            "-c", "python:fender.runtime.gunicorn_conf",
            "--workers", "2",
            "--bind", "127.0.0.1:{port}",
            "--graceful-timeout", str(graceful),
            *WORKERS[worker],
        ],
        cwd=HERE,
        ready_path="/health/ready",
        env={
            "FENDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "FENDER_TEST_MARKERS": str(tmp_path / "markers"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "PYTHONPATH": str(HERE),
            **env,
        },
    )  # fmt: skip


def active_requests(url: str) -> float:
    body = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("http_server_active_requests{")
    )


def markers(tmp_path: Path, phase: str, worker: str) -> list[Path]:
    """The workers whose startup or shutdown hooks ran (served_apps leaves one file each)."""
    kind = "asgi" if worker == "uvicorn" else "wsgi"
    return list((tmp_path / "markers").glob(f"{phase}-{kind}-*"))


def wait_for_both_workers(server: CommandServer, worker: str, tmp_path: Path) -> None:
    """Block until both workers have run their startup hooks.

    Ready means one worker answered; the other may still be importing the app, and a worker
    signalled before uvicorn installs its handlers dies of the signal with no hooks to run.
    Flask starts on its first request, so the probes also reach the second WSGI worker.
    """

    def started() -> bool:
        httpx.get(f"{server.url}/health/ready", timeout=30)
        return len(markers(tmp_path, "started", worker)) == 2

    wait_for(started, 60, "both workers started")


@pytest.mark.parametrize("worker", list(WORKERS))
def test_sigterm_lets_twenty_requests_in_flight_finish(worker, tmp_path):
    server = gunicorn(worker, tmp_path)
    server.start()
    wait_for_both_workers(server, worker, tmp_path)
    durations = [1 + (i % 3) for i in range(20)]  # 1 to 3 seconds each, after the gate
    try:
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            # Gated: none can finish before the last one has arrived, however slow the machine.
            futures = [
                pool.submit(httpx.get, f"{server.url}/sleep?seconds={d}&gated=true", timeout=60)
                for d in durations
            ]
            wait_for(lambda: active_requests(server.url) >= 20, 60, "20 requests in flight")
            os.kill(server.pid, signal.SIGTERM)
            # The master took the signal (it signals the workers next); the requests then run
            # their 1 to 3 seconds while the workers shut down.
            wait_for(lambda: "Handling signal: term" in server.output(), 30, "the master's SIGTERM")
            (tmp_path / "markers" / "release").touch()
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200] * 20
        assert server.process is not None
        assert server.process.wait(timeout=60) == 0
        assert len(markers(tmp_path, "shutdown", worker)) == 2, server.output()[-3000:]
    finally:
        server.close()


def test_a_request_longer_than_graceful_timeout_is_logged_and_shutdown_still_runs(tmp_path):
    server = gunicorn("uvicorn", tmp_path, graceful=3)
    server.start()
    try:
        wait_for_both_workers(server, "uvicorn", tmp_path)
        output = _outlive_graceful_timeout(server)
    finally:
        server.close()
    events = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    cancelled = [e for e in events if "timeout graceful shutdown exceeded" in str(e.get("event"))]
    assert cancelled, "uvicorn did not report the request it cancelled"
    access = [e for e in events if e.get("event") == "request" and e.get("route") == "/sleep"]
    assert access, "the cancelled request has no access event"
    assert access[0]["duration_ms"] >= 1000
    assert markers(tmp_path, "shutdown", "uvicorn"), "lifespan shutdown did not run"


def _outlive_graceful_timeout(server: CommandServer) -> str:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, f"{server.url}/sleep?seconds=60", timeout=90)
        wait_for(lambda: active_requests(server.url) >= 1, 60, "the slow request in flight")
        os.kill(server.pid, signal.SIGTERM)
        assert server.process is not None
        assert server.process.wait(timeout=45) == 0  # not SIGKILLed by gunicorn
        try:
            answer = slow.result().status_code
        except httpx.HTTPError:
            answer = None  # the connection was cut
        assert answer in (None, 500)  # uvicorn answers 500 for the task it cancelled
    return server.output()


@pytest.mark.parametrize("worker", list(WORKERS))
def test_fender_drain_turns_every_worker_unready_while_requests_succeed(worker, tmp_path):
    server = gunicorn(worker, tmp_path, FENDER_ADMIN_POLICY="always")
    server.start()
    try:
        result = subprocess.run(
            [str(BIN / "fender"), "drain", "--wait", "0"],
            env={**os.environ, "FENDER_RUNTIME_DIR": str(tmp_path / "run")},
            capture_output=True,
            text=True,
            check=True,
        )
        assert "draining" in result.stdout
        draining: set[int] = set()

        def every_worker_draining() -> bool:
            status = httpx.get(f"{server.url}/status", timeout=30).json()
            if status["state"] == "draining":
                draining.add(status["pid"])
            return len(draining) == 2

        wait_for(every_worker_draining, 60, "both workers to drain")
        for _ in range(10):
            assert httpx.get(f"{server.url}/health/ready", timeout=30).status_code == 503
            work = httpx.get(f"{server.url}/items/3", timeout=30)
            assert work.status_code == 200
            if worker == "uvicorn":  # WSGI may not set hop-by-hop headers (PEP 3333)
                assert work.headers["connection"] == "close"
    finally:
        server.terminate()
        server.close()


def test_status_page_in_headless_chromium(tmp_path):
    server = gunicorn("uvicorn", tmp_path, FENDER_ADMIN_POLICY="always")
    server.start()
    try:
        shown = load(
            f"{server.url}/status",
            tmp_path / "chromium",
            screenshot=ARTIFACTS / "status.png",
            window_size=(1100, 800),
        )
    finally:
        server.terminate()
        server.close()
    assert '<table id="checks">' in shown.dom
    assert "disk" in shown.dom
    assert "memory" in shown.dom
    assert 'id="state">ready<' in shown.dom
    assert shown.problems == [], shown.problems
    assert (ARTIFACTS / "status.png").stat().st_size > 5000


def test_wsgi_under_preload_starts_in_each_worker(tmp_path):
    """--preload builds the app in the master: background threads must start after the fork."""
    server = gunicorn("gthread", tmp_path, FENDER_ADMIN_POLICY="always")
    server._argv.insert(1, "--preload")
    server.start()
    try:
        ready: set[int] = set()

        def both_workers_ready() -> bool:
            status = httpx.get(f"{server.url}/status", timeout=30).json()
            if status["state"] == "ready":
                ready.add(status["pid"])
            return len(ready) == 2

        wait_for(both_workers_ready, 60, "both workers to start")
        for _ in range(6):
            assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
            # Every check ran in the worker: on a loop inherited dead from the master, each
            # would answer the run's deadline instead (after waiting for it).
            checks = httpx.get(f"{server.url}/health/detailed", timeout=10).json()["checks"]
            assert {"disk", "memory"} <= set(checks)
            late = {name: c for name, c in checks.items() if "deadline" in str(c.get("output"))}
            assert late == {}
    finally:
        server.terminate()
        server.close()
