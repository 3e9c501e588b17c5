"""Shared by the benchmarks: free loopback ports, a throwaway redis-server, and wrk.

Every process here is started by the bench on 127.0.0.1 and stopped by its own PID; nothing
else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["WRK_DONE", "free_port", "python_path", "redis_server", "wrk"]

START_TIMEOUT = 10.0

# wrk: count the statuses, and print one JSON line at the end (what wrk() parses).
WRK_DONE = r"""
local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, '
    .. '"max_ms": %.2f, "connect": %d, "read": %d, "write": %d, "timeout": %d, "non2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.connect, e.read, e.write, e.timeout, e.status))
end
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def python_path(*first: Path) -> str:
    """``first`` ahead of the caller's PYTHONPATH: a server measures the fender the bench does."""
    inherited = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([*(str(path) for path in first), *filter(None, [inherited])])


def _answers_ping(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A fresh redis-server on a free loopback port: its ``redis://`` URL, None if not installed.

    No persistence; stopped (SIGTERM, by PID) and its directory removed on exit.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="fender-bench-redis-")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def wrk(
    url: str, seconds: int, connections: int, script: Path, threads: int = 2
) -> dict[str, float]:
    """Run wrk against ``url`` for ``seconds``; ``script`` must end with :data:`WRK_DONE`."""
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    argv += ["--timeout", "5s", "-s", str(script), url]
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            parsed: dict[str, float] = json.loads(line.removeprefix("RESULT "))
            return parsed
    raise RuntimeError(f"no RESULT line from wrk:\n{result.stdout}\n{result.stderr}")
