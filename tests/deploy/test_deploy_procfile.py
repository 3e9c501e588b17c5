"""deploy/Procfile: its web command, run as a PaaS runs it, serves on the port the host gives."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from deploy_servers import ExactEnvServer, store_env

from servers import free_port, http_ready, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "deploy" / "Procfile"
# Heroku's and foreman's reading: `type: command`; any other line (a comment) is no process.
PROCESS = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def processes() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        match = PROCESS.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} twice"
            found[match.group(1)] = match.group(2)
    return found


def test_the_procfile_has_one_web_process():
    assert processes() == {"web": "fender run examples.kvstore.app:app"}


@pytest.mark.e2e
def test_the_web_process_binds_the_port_the_host_gives(tmp_path):
    port = free_port()
    env = {
        **store_env(tmp_path),
        # What Heroku gives a dyno: PORT, and no FENDER_PORT. FENDER_HOST stays fender's
        # default (0.0.0.0, as a dyno needs) on a host; here servers bind loopback only.
        "PORT": str(port),
        "FENDER_HOST": "127.0.0.1",
    }
    assert "FENDER_PORT" not in env
    # Heroku runs the command with `bash -c` in the application's root directory; bash execs
    # a lone command, so the platform's SIGTERM reaches gunicorn and its exit code is the
    # dyno's. (dash would wait on it as a child: signal the process group there.)
    server = ExactEnvServer(
        ["bash", "-c", processes()["web"]],
        ready=http_ready(port),
        port=port,
        env=env,
        cwd=ROOT,
    )
    try:
        server.start()  # ready: one worker answered 200 on the host's PORT
        # Each worker turns ready on its own, after its first checks: until all have, a
        # request may reach one still starting (503). Wait for the passing answer.
        answers: list[httpx.Response] = []

        def passes() -> bool:
            answers.append(httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10))
            return answers[-1].status_code == 200

        wait_for(passes, 30, "/health/ready answering 200")
        assert answers[-1].json()["status"] == "pass"
        assert server.terminate() == 0, server.output()[-3000:]
    finally:
        server.close()
