"""Real gunicorn: who the client is, for the rate limiter, cannot be forged, and survives a
unix socket.

uvicorn rewrites the client address from X-Forwarded-For for peers in ``forwarded_allow_ips``
(127.0.0.1 by default) before fender sees the request; fender's gunicorn config makes that list
FENDER_TRUSTED_PROXIES, so a local process cannot pick its identity. Behind a unix socket (the
classic nginx set-up) there is no peer address: with proxies configured the socket is a trusted
hop, so each forwarded client has its own bucket instead of all sharing one.
"""

from __future__ import annotations

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
    "uvicorn": ["-k", "fender.runtime.uvicorn_worker.UvicornWorker", "served_apps:asgi"],
    "gthread": ["-k", "gthread", "--threads", "4", "served_apps:wsgi"],
}


class UnixServer(CommandServer):
    """gunicorn bound to a unix socket (``{sock}`` in the argv)."""

    def __init__(self, argv: list[str], sock: Path, **kwargs: object) -> None:
        super().__init__([part.replace("{sock}", str(sock)) for part in argv], **kwargs)  # type: ignore[arg-type]
        self.sock = sock

    def client(self) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.sock)), base_url="http://app", timeout=5
        )

    def ready(self) -> bool:
        if not self.sock.exists():
            return False
        try:
            with self.client() as client:
                client.get("/health/live")
        except httpx.HTTPError:
            return False
        return True


def gunicorn(worker: str, tmp_path: Path, bind: str, **env: str) -> dict[str, object]:
    return {
        "argv": [
            str(BIN / "gunicorn"),
            "-c", "python:fender.runtime.gunicorn_conf",
            "--workers", "1",
            "--bind", bind,
            *WORKERS[worker],
        ],
        "cwd": HERE,
        "env": {
            "FENDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "PYTHONPATH": str(HERE),
            "FENDER_RATE_LIMIT": "2/minute",
            **env,
        },
    }  # fmt: skip


def statuses(client: httpx.Client, forwarded_for: list[str]) -> list[int]:
    return [
        client.get("/items/1", headers={"X-Forwarded-For": ip}).status_code for ip in forwarded_for
    ]


FORGED = ["10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]


@pytest.mark.parametrize("worker", list(WORKERS))
def test_a_forged_forwarded_for_from_loopback_changes_nothing(worker, tmp_path):
    server = CommandServer(**gunicorn(worker, tmp_path, "127.0.0.1:{port}"))  # type: ignore[arg-type]
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            assert statuses(client, FORGED) == [200, 200, 429, 429]
    finally:
        server.terminate()
        server.close()


@pytest.mark.parametrize("worker", list(WORKERS))
def test_behind_a_unix_socket_each_forwarded_client_has_its_own_limit(worker, tmp_path):
    sock = tmp_path / "app.sock"
    server = UnixServer(
        **gunicorn(worker, tmp_path, "unix:{sock}", FENDER_TRUSTED_PROXIES="127.0.0.1/32"),  # type: ignore[arg-type]
        sock=sock,
    )
    server.start()
    try:
        with server.client() as client:
            first = statuses(client, ["203.0.113.1", "203.0.113.2", "203.0.113.3"])
            again = statuses(client, ["203.0.113.1"] * 2)
    finally:
        server.terminate()
        server.close()
    assert first == [200, 200, 200]
    assert again == [200, 429]
