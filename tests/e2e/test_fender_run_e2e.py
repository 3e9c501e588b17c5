"""`fender run` on real gunicorn: the plan it prints is the one served and logged."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from servers import CommandServer, free_port

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.e2e

APPS = {"fastapi": "served_apps:asgi", "flask": "served_apps:wsgi"}


def environment(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        "FENDER_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "MEMORY_LIMIT_MB": "512",
        "FENDER_HOST": "127.0.0.1",
        "FENDER_PORT": str(port),
        "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "PYTHONPATH": str(HERE),
        "HOME": str(tmp_path / "home"),  # where gunicorn 27 would open its control socket
    }


def logged_config(log: str) -> dict:
    for line in log.splitlines():
        if '"server_config"' in line:
            return json.loads(line)
    raise AssertionError(f"no server_config event in:\n{log[-3000:]}")


@pytest.mark.parametrize("kind", list(APPS))
def test_fender_run_serves_what_fender_workers_prints(tmp_path, kind):
    port = free_port()
    env = environment(tmp_path, port)
    printed = subprocess.run(
        [str(BIN / "fender"), "workers", "--json", APPS[kind]],
        env={**os.environ, **env},
        cwd=HERE,
        capture_output=True,
        text=True,
        check=True,
    )
    plan = json.loads(printed.stdout)
    server = CommandServer(
        [str(BIN / "fender"), "run", APPS[kind]],
        port=port,
        cwd=HERE,
        env=env,
        ready_path="/health/ready",
    )
    server.start()
    try:
        assert httpx.get(f"{server.url}/items/7", timeout=10).json()["item_id"] == 7
        config = logged_config(server.output())
        for name in ("workers", "worker_class", "bind", "timeout", "keepalive", "app_kind"):
            assert config[name] == plan[name], name
        assert config["effective"]["workers"] == plan["workers"]
        assert plan["container"]["memory_limit_mb"] == 512
        expected_class = "UvicornWorker" if kind == "fastapi" else "ThreadWorker"
        assert plan["worker_class"].endswith(expected_class)
        # 512 MiB: the memory bound, not the CPU formula, whatever this host has
        assert plan["workers"] == plan["worker_plan"]["memory_workers"] <= 2
        assert not (tmp_path / "home" / ".gunicorn").exists()  # no control socket
    finally:
        server.stop()
        server.close()


@pytest.mark.parametrize("spec", ["examples.fastapi_app:app", "examples.flask_app:app"])
def test_fender_run_serves_the_examples(tmp_path, spec):
    port = free_port()
    env = {**environment(tmp_path, port), "PYTHONPATH": str(HERE.parent.parent)}
    server = CommandServer(
        [str(BIN / "fender"), "run", spec],
        port=port,
        cwd=HERE.parent.parent,
        env=env,
        ready_path="/health/ready",
    )
    server.start()
    try:
        assert httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200
        config = logged_config(server.output())
        assert config["app_kind"] == ("asgi" if "fastapi" in spec else "wsgi")
        assert config["worker_plan"]["inputs"]["sources"]["memory_bytes"] == "MEMORY_LIMIT_MB"
    finally:
        server.stop()
        server.close()
