"""Real gunicorn (sync, Flask) and gunicorn with fender's uvicorn worker (FastAPI): fender's
edge is the one reader of the forwarding headers.

From a peer that is not a trusted proxy, spoofed ``X-Forwarded-*`` change nothing the app, the
rate limiter or the admin CIDRs see; from a trusted proxy, its headers name the client, scheme
and host; and an unreadable chain from it (uvicorn used to make any string the client: a fresh
rate-limit bucket each) counts as the proxy and is never admin.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import httpx
import pytest

from servers import CommandServer

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.e2e

WORKERS = {
    "uvicorn-fastapi": ["-k", "fender.runtime.uvicorn_worker.UvicornWorker", "edge_apps:asgi"],
    "sync-flask": ["-k", "sync", "edge_apps:wsgi"],
}
SPOOFED = {"X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "https",
           "X-Forwarded-Host": "evil.example"}  # fmt: skip


def start(worker: str, tmp_path: Path, **env: str) -> CommandServer:
    server = CommandServer(
        [
            str(BIN / "gunicorn"),
            "-c",
            "python:fender.runtime.gunicorn_conf",
            "--workers",
            "1",
            "--bind",
            "127.0.0.1:{port}",
            *WORKERS[worker],
        ],
        cwd=HERE,
        env={
            "FENDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            # (the sources under test first when PYTHONPATH names them, as in a worktree)
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            "FENDER_RATE_LIMIT": "3/minute",
            "FENDER_ADMIN_CIDRS": "127.0.0.0/8",
            **env,
        },
    )
    server.start()
    return server


@pytest.mark.parametrize("worker", list(WORKERS))
def test_spoofing_from_an_untrusted_peer_changes_nothing(worker, tmp_path):
    server = start(worker, tmp_path, FENDER_TRUSTED_PROXIES="10.0.0.0/8")
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            who = client.get("/who", headers=SPOOFED).json()
            statuses = [
                client.get(
                    "/who", headers={**SPOOFED, "X-Forwarded-For": f"203.0.113.{i}"}
                ).status_code
                for i in range(3)
            ]
    finally:
        server.terminate()
        server.close()
    assert who == {"client": "127.0.0.1", "scheme": "http", "host": f"127.0.0.1:{server.port}"}
    assert statuses == [200, 200, 429]  # one bucket, the peer's


@pytest.mark.parametrize("worker", list(WORKERS))
def test_a_trusted_proxys_headers_are_used_and_an_unreadable_chain_is_the_proxy(worker, tmp_path):
    server = start(worker, tmp_path, FENDER_TRUSTED_PROXIES="127.0.0.1/32")
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            who = client.get("/who", headers={**SPOOFED, "X-Forwarded-For": "203.0.113.9"})
            garbage = [
                client.get("/who", headers={"X-Forwarded-For": f"junk-{i}"}).status_code
                for i in range(4)
            ]
            status_unknown = client.get("/status", headers={"X-Forwarded-For": "unknown"})
            status_local = client.get("/status", headers={"X-Forwarded-For": "127.0.0.9"})
    finally:
        server.terminate()
        server.close()
    assert who.json() == {"client": "203.0.113.9", "scheme": "https", "host": "evil.example"}
    # distinct unreadable strings share the proxy's bucket: no fresh bucket per string
    assert garbage == [200, 200, 200, 429]
    assert status_unknown.status_code == 404  # unreadable is untrusted, never admin
    assert status_local.status_code == 200
