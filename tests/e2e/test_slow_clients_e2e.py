"""Slow clients against real gunicorn: fender's threaded worker keeps serving and stays live.

The drill: N connections each send a request head one byte at a time, more connections than
the worker has threads, while liveness probes and ordinary requests come one after another.
Under the stock gthread worker the slow heads hold every thread and the probes time out
(the control case below shows the drill bites); under fender's worker every probe and every
request answers, and each slow head is closed with 408 once FENDER_REQUEST_HEAD_TIMEOUT passes.
"""

from __future__ import annotations

import secrets
import socket
import sys
import threading
from pathlib import Path
from typing import Self

import httpx
import pytest

from servers import CommandServer

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SLOW_CONNECTIONS = 8
THREADS = 2

pytestmark = pytest.mark.e2e


def gunicorn(worker_class: str, tmp_path: Path, **env: str) -> CommandServer:
    return CommandServer(
        [
            str(BIN / "gunicorn"),
            "-c", "python:fender.runtime.gunicorn_conf",
            "--workers", "1",
            "--threads", str(THREADS),
            "--worker-class", worker_class,
            "--bind", "127.0.0.1:{port}",
            "served_apps:wsgi",
        ],
        cwd=HERE,
        env={
            "FENDER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "PYTHONPATH": str(HERE),
            **env,
        },
    )  # fmt: skip


class SlowHeads:
    """Connections that trickle a request head, one byte per interval, on one thread."""

    def __init__(self, port: int, count: int, interval: float = 0.2) -> None:
        self.sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.interval = interval
        self.answers: dict[int, bytes] = {}
        self.stop = threading.Event()
        self.all_answered = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> Self:
        for sock in self.sockets:
            sock.sendall(b"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        self.thread.start()
        return self

    def _trickle(self) -> None:
        while not self.stop.wait(self.interval):
            for index, sock in enumerate(self.sockets):
                if index in self.answers:
                    continue
                try:
                    sock.sendall(b"a")
                except OSError:  # closed by the server: read its answer
                    self.answers[index] = _drain(sock)
                    if len(self.answers) == len(self.sockets):
                        self.all_answered.set()

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def _drain(sock: socket.socket) -> bytes:
    sock.settimeout(1)
    try:
        return sock.recv(4096)
    except OSError:
        return b""


def probe(url: str, path: str) -> int | None:
    try:
        return httpx.get(f"{url}{path}", timeout=1.0).status_code
    except httpx.TimeoutException:
        return None


def drill(url: str, rounds: int) -> tuple[list[int | None], list[int | None]]:
    live, items = [], []
    # Back to back, all while the slow heads (sent before the drill) are still incomplete.
    for _ in range(rounds):
        live.append(probe(url, "/health/live"))
        items.append(probe(url, "/items/2"))
    return live, items


def test_fender_worker_stays_live_and_serving_under_slow_heads(tmp_path):
    server = gunicorn(
        "fender.runtime.gthread_worker.ThreadWorker", tmp_path, FENDER_REQUEST_HEAD_TIMEOUT="4"
    )
    server.start()
    try:
        with SlowHeads(server.port, SLOW_CONNECTIONS) as slow:
            live, items = drill(server.url, rounds=6)
            assert live == [200] * 6
            assert items == [200] * 6
            # Past the head timeout each slow connection is answered 408 and closed.
            assert slow.all_answered.wait(15), slow.answers
            assert all(b" 408 " in answer for answer in slow.answers.values()), slow.answers
    finally:
        server.stop()


def test_oversized_head_gets_431_from_the_worker(tmp_path):
    server = gunicorn(
        "fender.runtime.gthread_worker.ThreadWorker", tmp_path, FENDER_MAX_HEADER_BYTES="4096"
    )
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192)
            assert b" 431 " in _drain(sock)
        assert httpx.get(f"{server.url}/items/3", timeout=5).status_code == 200
    finally:
        server.stop()


def test_control_the_stock_gthread_worker_starves(tmp_path):
    server = gunicorn("gthread", tmp_path)
    server.start()
    try:
        with SlowHeads(server.port, SLOW_CONNECTIONS):
            live, _ = drill(server.url, rounds=3)
        assert None in live  # the drill bites: some probe timed out
    finally:
        server.kill()
