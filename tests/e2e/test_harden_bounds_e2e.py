"""Real gunicorn: request heads are bounded, and so is every logged client-chosen field.

The adversarial pass, under fender's uvicorn worker with httptools: 8 connections with 64 MiB
headers added 490 MiB to a worker, and a 32 MiB User-Agent became a 32 MiB access line. Here
8 connections offer 8 MiB headers each (the worker must answer 431 or close, and stay about
its size), a head with too many lines gets 431, and a User-Agent under the head's bound but
over the log's bound is cut in the access line. The gthread worker gets gunicorn's limits.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import secrets
import socket
import sys
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from servers import CommandServer, wait_for

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.e2e

WORKERS = {
    "uvicorn": ["-k", "fender.runtime.uvicorn_worker.UvicornWorker", "served_apps:asgi"],
    "gthread": ["-k", "gthread", "--threads", "2", "served_apps:wsgi"],
}
MIB = 1024 * 1024


def gunicorn(worker: str, tmp_path: Path) -> CommandServer:
    return CommandServer(
        [
            str(BIN / "gunicorn"),
            "-c", "python:fender.runtime.gunicorn_conf",
            "--workers", "1",
            "--bind", "127.0.0.1:{port}",
            *WORKERS[worker],
        ],
        cwd=HERE,
        env={
            "FENDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            # the sources this test runs with first (a worktree's), then the served apps
            "PYTHONPATH": os.pathsep.join(filter(None, (os.environ.get("PYTHONPATH"), str(HERE)))),
            "FENDER_RATE_LIMIT_ENABLED": "false",
            "FENDER_ACCESS_LOG_OWN_ENDPOINTS": "false",
        },
    )  # fmt: skip


@pytest.fixture(params=list(WORKERS))
def server(request: pytest.FixtureRequest, tmp_path: Path):
    process = gunicorn(request.param, tmp_path)
    process.start()
    try:
        yield request.param, process
    finally:
        process.terminate()
        process.close()


def offer(port: int, head: bytes, filler: int = 0) -> bytes:
    """Send ``head`` then ``filler`` bytes of one header value; what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may close before all is sent
            sock.sendall(head)
            chunk = b"a" * (64 * 1024)
            for _ in range(filler // len(chunk)):
                sock.sendall(chunk)
            sock.sendall(b"\r\n\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            while part := sock.recv(65536):
                answer += part
    return answer


def worker_rss(process: CommandServer) -> int:
    (worker,) = psutil.Process(process.pid).children()
    return int(worker.memory_info().rss)


def test_a_huge_header_is_refused_and_the_worker_does_not_grow(server):
    worker, process = server
    httpx.get(f"{process.url}/items/1", timeout=10)  # warm: the app is loaded
    before = worker_rss(process)
    head = b"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: "
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: offer(process.port, head, 8 * MIB), range(8)))
    for answer in answers:
        # 431 (gunicorn's own workers too), or the connection closed
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431")
    if worker == "uvicorn":
        assert all(a.startswith(b"HTTP/1.1 431") for a in answers)
        assert b'"request_header_fields_too_large"' in answers[0]
    assert worker_rss(process) - before < 16 * MIB  # 64 MiB offered in all
    assert httpx.get(f"{process.url}/items/1", timeout=10).status_code == 200


def test_too_many_header_lines_are_refused(server):
    worker, process = server
    lines = b"".join(b"X-N%d: v\r\n" % n for n in range(150))  # FENDER_MAX_HEADER_COUNT 100
    answer = offer(process.port, b"GET /items/1 HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431")
    if worker == "uvicorn":
        wait_for(lambda: '"oversized_header"' in process.output(), 10, "an oversized_header event")


def test_a_head_within_the_bounds_is_served(server):
    worker, process = server
    headers = {f"X-N{n}": "v" * 100 for n in range(50)}
    answer = httpx.get(f"{process.url}/items/1", headers=headers, timeout=10)
    assert answer.status_code == 200
    if worker == "uvicorn":  # production hides versions: uvicorn names itself no more
        assert "server" not in answer.headers


def test_a_long_user_agent_is_cut_in_the_access_line(server):
    _worker, process = server
    agent = "A" * 7000  # within the head's bound, far over the access log's
    answer = httpx.get(f"{process.url}/items/7", headers={"User-Agent": agent}, timeout=10)
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]

    def logged() -> list[dict[str, object]]:
        lines = [line for line in process.output().splitlines() if request_id in line]
        return [orjson.loads(line) for line in lines if line.startswith("{")]

    wait_for(lambda: any(e.get("event") == "request" for e in logged()), 10, "the access line")
    (event,) = [e for e in logged() if e.get("event") == "request"]
    logged_agent = str(event["user_agent"])
    assert logged_agent.startswith("A" * 512)
    assert logged_agent.endswith("...(7000 chars)")
    line = next(line for line in process.output().splitlines() if request_id in line)
    assert len(line) < 2000
