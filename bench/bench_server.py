"""What a client sees: bare vs fender-installed apps served by real gunicorn, over loopback TCP.

The in-process benchmark (bench_request_path.py) isolates fender's cost against the framework
alone; here the same route is served the way production serves it: gunicorn with fender's config,
one worker (uvicorn for FastAPI, gthread for Flask), JSON access lines on the server's stdout,
Prometheus metrics in multiprocess mode. A small asyncio client keeps ``--connections``
keep-alive connections busy; each round sends the same number of requests to the bare server and
to the fender one, in alternating order, and compares their throughput (paired, one round at a
time, so that a noisy neighbour hits both).

Run: .venv/bin/python bench/bench_server.py [--rounds N] [--requests N] [--connections N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _results import machine_header, markdown_table, publish

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PATH = "/items/42"
PACKAGES = (
    "fastapi",
    "starlette",
    "flask",
    "gunicorn",
    "uvicorn",
    "uvicorn-worker",
    "httptools",
    "uvloop",
)
WORKERS = {
    "FastAPI": ["--worker-class", "fender.runtime.uvicorn_worker.UvicornWorker"],
    "Flask": ["--worker-class", "gthread", "--threads", "8"],
}
PLAIN_WORKERS = {
    "FastAPI": ["--worker-class", "uvicorn_worker.UvicornWorker"],
    "Flask": ["--worker-class", "gthread", "--threads", "8"],
}
APPS = {"FastAPI": ("fastapi_bare", "fastapi_fender"), "Flask": ("flask_bare", "flask_fender")}
START_TIMEOUT = 60.0


# --- servers --------------------------------------------------------------------------------


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail if ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One gunicorn process serving ``app`` (a ``server_apps`` name) on a free loopback port."""

    def __init__(self, framework: str, app: str, workdir: Path, *, plain: bool = False) -> None:
        """``plain``: stock gunicorn, no fender configuration (nothing of fender imported)."""
        self.port = free_port()
        self.name = app
        metrics = workdir / f"metrics-{app}{'-plain' if plain else ''}"
        metrics.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": str(HERE),
            "FENDER_ENV": "production",
            "SECRET_KEY": os.urandom(32).hex(),
            "FENDER_RUNTIME_DIR": str(workdir / f"run-{app}"),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "FENDER_RATE_LIMIT_ENABLED": "false",
            "GUNICORN_MAX_REQUESTS": "0",  # steady state: no worker replaced mid-round
        }
        config = [] if plain else ["-c", "python:fender.runtime.gunicorn_conf"]
        workers = PLAIN_WORKERS[framework] if plain else WORKERS[framework]
        argv = [
            str(BIN / "gunicorn"),
            *config,
            "--workers", "1",
            "--bind", f"127.0.0.1:{self.port}",
            *workers,
            f"server_apps:{app}",
        ]  # fmt: skip
        # Access lines go to a file, as a container runtime would collect them.
        self.log = (workdir / f"{app}.log").open("wb")
        self.process = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=HERE,
            start_new_session=True,
        )
        wait_ready(f"http://127.0.0.1:{self.port}{PATH}", self.process, START_TIMEOUT)

    def worker_rss_mib(self) -> float:
        """Resident MiB of the (one) worker, after the load: what a worker costs in memory."""
        import psutil

        children = psutil.Process(self.process.pid).children()
        return sum(child.memory_info().rss for child in children) / 2**20

    def close(self) -> None:
        """SIGTERM the gunicorn we started, then SIGKILL its session if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.log.close()


# --- the client -----------------------------------------------------------------------------

REQUEST = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench/1.0\r\n\r\n".encode()


async def _connection(port: int, count: int, latencies: list[float]) -> None:
    """Send ``count`` requests one after the other on one keep-alive connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            start = time.perf_counter()
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            if status != b"200":
                raise RuntimeError(f"status {status.decode()} from port {port}")
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                lowered = name.strip().lower()
                if lowered == b"content-length":
                    length = int(value)
                elif lowered == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _load(port: int, requests: int, connections: int) -> tuple[float, list[float]]:
    """Requests per second and the latency of each request."""
    latencies: list[float] = []
    share = requests // connections
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, share, latencies) for _ in range(connections)))
    elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies


def load(port: int, requests: int, connections: int) -> tuple[float, list[float]]:
    """Run :func:`_load` on a fresh event loop."""
    return asyncio.run(_load(port, requests, connections))


# --- the run --------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(framework: str, rounds: int, requests: int, connections: int) -> list[list[str]]:
    """Rows of the table for one framework: bare, fender, and their paired ratio."""
    bare_name, fender_name = APPS[framework]
    with tempfile.TemporaryDirectory(prefix="fender-bench-server-") as tmp:
        bare = Server(framework, bare_name, Path(tmp))
        try:
            with_fender = Server(framework, fender_name, Path(tmp))
        except BaseException:
            bare.close()
            raise
        try:
            for server in (bare, with_fender):  # warm up: imports, first-call caches
                load(server.port, min(requests, 500), connections)
            rps: dict[str, list[float]] = {bare_name: [], fender_name: []}
            latencies: dict[str, list[float]] = {bare_name: [], fender_name: []}
            ratios: list[float] = []
            for round_no in range(rounds):
                order = (bare, with_fender) if round_no % 2 else (with_fender, bare)
                for server in order:
                    throughput, seen = load(server.port, requests, connections)
                    rps[server.name].append(throughput)
                    latencies[server.name] += seen
                ratios.append(rps[bare_name][-1] / rps[fender_name][-1])
            rss = {bare_name: bare.worker_rss_mib(), fender_name: with_fender.worker_rss_mib()}
            plain = Server(framework, bare_name, Path(tmp), plain=True)
            try:
                load(plain.port, requests, connections)
                rss["plain"] = plain.worker_rss_mib()
            finally:
                plain.close()
        finally:
            bare.close()
            with_fender.close()
    rows = []
    for name, label in ((bare_name, f"{framework} bare"), (fender_name, f"{framework} + fender")):
        seen = latencies[name]
        rows.append([
            label,
            f"{statistics.median(rps[name]):,.0f}",
            f"{percentile(seen, 0.5) * 1e6:.0f}",
            f"{percentile(seen, 0.99) * 1e6:.0f}",
            "1.00x" if name == bare_name else f"{statistics.median(ratios):.2f}x",
            f"{rss[name]:.1f}",
            f"{rss[name] - rss['plain']:+.1f}",
        ])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=10, help="paired rounds (default 10)")
    parser.add_argument("--requests", type=int, default=4000, help="per round and server")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--smoke", action="store_true", help="a few requests, nothing written")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.requests, args.connections, args.no_write = 2, 40, 4, True
    rows = []
    for framework in APPS:
        rows += measure(framework, args.rounds, args.requests, args.connections)
    table = markdown_table(
        [
            "app",
            "requests/s (median round)",
            "p50 µs",
            "p99 µs",
            "time per request vs bare",
            "worker RSS MiB",
            "RSS over plain gunicorn",
        ],
        rows,
    )
    intro = (
        f"`bench/bench_server.py --rounds {args.rounds} --requests {args.requests} "
        f"--connections {args.connections}`: GET {PATH} through real gunicorn (fender's config, "
        "one worker: fender's UvicornWorker for FastAPI, gthread with 8 threads for Flask) over "
        "loopback TCP, from an asyncio client with keep-alive connections on the same 2-core "
        "machine. fender as installed by default (rate limits off, to compare like with like): "
        "request ids, a JSON access line per request to the server's stdout (a file here), "
        "metrics in multiprocess mode. Ratio: median over rounds of bare requests/s divided "
        "by fender's, each round timing both servers back to back. Worker RSS: the worker's "
        "resident size after the load, against the same bare app under plain gunicorn (stock "
        "uvicorn worker or gthread, no fender configuration: nothing of fender imported); "
        "target for fender's addition: <= 5 MiB. The bare row already pays fender's gunicorn "
        "configuration (logging, metrics)."
    )
    publish(
        "server",
        ["## Through a real server (what a client sees)", machine_header(PACKAGES), intro, table],
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
