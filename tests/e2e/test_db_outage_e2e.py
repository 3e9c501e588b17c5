"""PostgreSQL stops under load and starts again; the app (uvicorn, fender.db.engine() in a
route) is never restarted.

While it is down: readiness fails within the check's timeout, and no request waits past
DB_POOL_TIMEOUT (a refused connection fails at once; nothing queues on a dead pool). Once it is
back: readiness passes by itself and requests succeed on the same pool (pre-ping replaces the
dead connections).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Self

import httpx
import orjson
import pytest

from servers import CommandServer, wait_for

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TOKEN = "t" * 40
POOL_TIMEOUT = 3.0
HEALTH_TIMEOUT = 1.0

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


class Load:
    """Threads sending requests until stopped; every answer's time and status kept."""

    def __init__(self, url: str, threads: int = 6) -> None:
        self.url = url
        self.answers: list[tuple[float, float, int]] = []  # (sent at, seconds, status)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                status = client.get("/backend").status_code
                with self._lock:
                    self.answers.append((sent, time.monotonic() - sent, status))

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def since(self, moment: float) -> list[tuple[float, float, int]]:
        with self._lock:
            return [answer for answer in self.answers if answer[0] >= moment]


def readiness(url: str) -> int:
    return httpx.get(f"{url}/health/ready", timeout=10).status_code


def database_check(url: str) -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = orjson.loads(httpx.get(f"{url}/health/detailed", headers=headers, timeout=10).content)
    return body["checks"]["database"]


def test_postgres_stops_under_load_and_comes_back(postgres_server, tmp_path):
    server = CommandServer(
        [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}", "db_apps:app"],
        cwd=HERE,
        ready_path="/health/ready",
        env={
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            "FENDER_ENV": "development",
            "FENDER_TESTING": "0",
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "FENDER_ADMIN_TOKEN": TOKEN,
            "DATABASE_URL": postgres_server.url,
            "DB_POOL_SIZE": "2",
            "DB_MAX_OVERFLOW": "2",
            "DB_POOL_TIMEOUT": str(POOL_TIMEOUT),
            "FENDER_HEALTH_TIMEOUT": str(HEALTH_TIMEOUT),
            "FENDER_HEALTH_INTERVAL": "0.5",
            "FENDER_RATE_LIMIT_ENABLED": "0",
        },
    )
    server.start()
    try:
        with Load(server.url) as load:
            wait_for(lambda: len(load.answers) >= 20, 30, "requests served before the outage")
            assert {status for _, _, status in load.answers} == {200}

            # A fast shutdown: sessions are ended and the port closes.
            stopped = time.monotonic()
            postgres_server._signal_and_wait(signal.SIGINT)
            wait_for(lambda: readiness(server.url) == 503, 30, "readiness failing")
            check = database_check(server.url)
            assert check["status"] == "fail"
            assert check["duration_ms"] < HEALTH_TIMEOUT * 1000
            wait_for(
                lambda: len([a for a in load.since(stopped) if a[2] == 500]) >= 20,
                30,
                "requests answered during the outage",
            )
            during = load.since(stopped)

            restarted = time.monotonic()
            postgres_server.start()
            wait_for(lambda: readiness(server.url) == 200, 30, "readiness passing by itself")
            recovered = time.monotonic()
            wait_for(
                lambda: len([a for a in load.since(recovered) if a[2] == 200]) >= 20,
                30,
                "requests served after the outage",
            )
        slowest = max(seconds for sent, seconds, _ in during if sent < restarted)
        assert slowest < POOL_TIMEOUT, f"a request waited {slowest:.2f}s on a dead database"
        assert {status for _, _, status in during} <= {200, 500}
        after = [status for sent, _, status in load.answers if sent >= recovered]
        assert after, "no request after the recovery"
        assert set(after) == {200}, "the pool did not recover"
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert "db_client_connection_timeouts_total{" in metrics
        timeouts = [
            line
            for line in metrics.splitlines()
            if line.startswith("db_client_connection_timeouts_total{")
        ]
        assert all(line.endswith(" 0.0") for line in timeouts), timeouts
    finally:
        server.close()
