"""`make demo` serves the reference service on embedded defaults under the production server."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from servers import CommandServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_make_demo_serves_health_live_under_gunicorn(tmp_path):
    venv = Path(sys.prefix)
    server = CommandServer(
        ["make", "--no-print-directory", "demo-serve", f"VENV={venv}", "DEMO_PORT={port}"],
        cwd=ROOT,
        # embedded defaults only: no Redis, no PostgreSQL, nothing from the developer's shell
        env={
            "REDIS_URL": "",
            "DATABASE_URL": "",
            "FENDER_ENV": "",
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "PROMETHEUS_MULTIPROC_DIR": "",
        },
        ready_path="/health/ready",
    )
    server.start()
    try:
        assert httpx.get(f"{server.url}/health/live", timeout=30).status_code == 200
        assert httpx.get(f"{server.url}/health/ready", timeout=30).json()["state"] == "ready"
        assert httpx.get(f"{server.url}/items/5", timeout=30).json() == {"item_id": 5}
        assert (
            "http_server_request_duration_seconds"
            in httpx.get(f"{server.url}/metrics", timeout=30).text
        )
        assert "Booting worker" in server.output()
    finally:
        server.terminate()  # make dies of the SIGTERM it forwards; gunicorn must stop cleanly
        output = server.output()
        server.close()
    assert "Shutting down: Master" in output
    assert "Traceback" not in output
