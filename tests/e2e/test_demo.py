"""`make demo` serves the reference key-value store on embedded defaults under `fender run`."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from servers import CommandServer, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_make_demo_serves_the_store_with_fender_under_gunicorn(tmp_path):
    venv = Path(sys.prefix)
    data = tmp_path / "data"
    server = CommandServer(
        [
            "make", "--no-print-directory", "demo-serve",
            f"VENV={venv}", "DEMO_PORT={port}", f"DEMO_DATA={data}",
        ],
        cwd=ROOT,
        # embedded defaults only: no Redis, no PostgreSQL, nothing from the developer's shell
        env={
            "REDIS_URL": "",
            "DATABASE_URL": "",
            "FENDER_ENV": "",
            "KV_MODE": "",
            "KV_LOCAL_URL": "",
            "KV_PEER_URL": "",
            "FENDER_ADMIN_CIDRS": "",
            "FENDER_ADMIN_TOKEN": "",
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "PROMETHEUS_MULTIPROC_DIR": "",
        },
        ready_path="/health/ready",
    )  # fmt: skip
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/health/live").status_code == 200
            # Each worker starts at its first request: wait until one says it is ready.
            wait_for(lambda: client.get("/health/ready").json()["state"] == "ready", 60, "ready")
            home = client.get("/", headers={"Accept": "application/json"})
            assert home.status_code == 200
            assert home.headers["content-type"].startswith("application/json")
            assert "/write" in home.text  # the endpoints, listed
            assert "/read" in home.text
            assert client.post("/write/greeting/hello").status_code == 200
            assert client.get("/read/greeting").json()["value"] == "hello"
            # development: fender's protected pages open from loopback without a token
            assert client.get("/status", headers={"Accept": "application/json"}).status_code == 200
            assert "http_server_request_duration_seconds" in client.get("/metrics").text
        assert "Booting worker" in server.output()
        # what to try, before the server's own lines
        assert "curl -X POST http://127.0.0.1:" in server.output()
        assert "admin_from_loopback" in server.output()  # the start-up line says the door is open
        assert (data / "kv-local.db").exists()  # the embedded nodes live under DEMO_DATA
    finally:
        server.terminate()  # make dies of the SIGTERM it forwards; gunicorn must stop cleanly
        output = server.output()
        server.close()
    assert "Shutting down: Master" in output
    assert "Traceback" not in output
    assert "py.warnings" not in output  # no library warning at start or stop
