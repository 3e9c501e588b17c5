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
        env={"REDIS_URL": "", "DATABASE_URL": f"sqlite:///{tmp_path}/demo.db", "FENDER_ENV": ""},
    )
    server.start()
    try:
        response = httpx.get(f"{server.url}/health/live", timeout=5)
        assert response.status_code == 200
        assert "gunicorn" in server.output().lower()
        assert "uvicorn" in server.output().lower()
    finally:
        server.terminate()  # make dies of the SIGTERM it forwards; gunicorn must stop cleanly
        output = server.output()
        server.close()
    assert "Shutting down: Master" in output
    assert "Traceback" not in output
