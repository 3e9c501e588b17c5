"""The memory guard on real gunicorn: past 85% of its share a worker recycles, nothing fails."""

from __future__ import annotations

import concurrent.futures
import secrets
import sys
import threading
from pathlib import Path

import httpx
import pytest

from servers import CommandServer, wait_for

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.e2e


def test_a_worker_over_its_share_recycles_and_no_request_fails(tmp_path):
    server = CommandServer(
        [
            str(BIN / "gunicorn"),
            "-c", "python:fender.runtime.gunicorn_conf",
            "--workers", "1",
            "--worker-class", "fender.runtime.uvicorn_worker.UvicornWorker",
            "--bind", "127.0.0.1:{port}",
            "memory_apps:app",
        ],
        cwd=HERE,
        env={
            "FENDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "MEMORY_LIMIT_MB": "400",  # one worker: its share is the whole limit
            "FENDER_MEMORY_CHECK_INTERVAL": "0.1",
            "FENDER_RATE_LIMIT_ENABLED": "false",  # the traffic below is one client, flat out
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "PYTHONPATH": str(HERE),
        },
    )  # fmt: skip
    server.start()
    try:
        first = httpx.get(f"{server.url}/pid", timeout=10).json()["pid"]
        statuses: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    statuses.append(client.get(f"{server.url}/pid").status_code)

        def replaced() -> bool:
            answer = httpx.get(f"{server.url}/pid", timeout=30)
            assert answer.status_code == 200, (answer.status_code, answer.text)
            return answer.json()["pid"] != first

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            running = [pool.submit(traffic) for _ in range(2)]
            try:
                grown = httpx.post(f"{server.url}/grow", params={"mb": 360}, timeout=30)
                assert grown.status_code == 200
                assert grown.json()["pid"] == first
                wait_for(replaced, 60, "a fresh worker after the recycle")
            finally:
                stop.set()
            for future in running:
                future.result()
        assert statuses
        assert set(statuses) == {200}
        log = server.output()
        assert '"memory_critical"' in log
        assert '"action":"recycle"' in log.replace(" ", "")
    finally:
        server.stop()
        server.close()
