"""What a client sees: bare vs default-installed fender apps served by real gunicorn.

The in-process benchmark (bench_request_path.py) isolates fender's cost against the framework
alone; here the same route is served the way production serves it: gunicorn with fender's config,
one worker (fender's uvicorn worker for FastAPI, gthread for Flask), fender as a default install
turns it on (the rate limiter in memory with a limit no request reaches, security headers, the
monitor, JSON access lines on the server's stdout), Prometheus metrics in multiprocess mode.

Load: wrk (one thread, ``--connections`` keep-alive connections, ``--seconds`` a round: the run
is bounded in time), or, where wrk is not installed, a small asyncio client sending
``--requests`` a round. Each round loads the bare server, the fender one and the peer stack's
back to back, in rotating order, and compares their requests/s with bare's in the same round
(paired, so that a noisy neighbour hits them all).
Worker RSS is read after the warm-up, against the same bare app under plain gunicorn (no fender
configuration: nothing of fender imported).

Run: .venv/bin/python bench/bench_server.py [--rounds N] [--seconds N] [--connections N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _peers import available
from _results import machine_header, markdown_table, publish, target_note
from _servers import WRK_DONE, free_port, python_path, wrk

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
# role: (the server_apps name, served by plain gunicorn rather than with fender's config).
APPS = {
    framework: {
        "bare": (f"{prefix}_bare", False),
        "fender": (f"{prefix}_fender", False),
        # The peers bring no gunicorn config of their own; left out where not installed.
        **({"peers": (f"{prefix}_peers", True)} if available(prefix) else {}),
    }
    for framework, prefix in (("FastAPI", "fastapi"), ("Flask", "flask"))
}
LABELS = {"bare": "bare", "fender": "+ fender, default install", "peers": "peer stack"}
START_TIMEOUT = 60.0
# Issue 16: requests/s of the default install over bare, and what it adds to a worker.
RPS_TARGET = 0.9
RSS_TARGET = 5.0


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
            "PYTHONPATH": python_path(HERE),
            "FENDER_ENV": "production",
            "SECRET_KEY": os.urandom(32).hex(),
            "FENDER_RUNTIME_DIR": str(workdir / f"run-{app}"),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            # The default install, with a limit no request of the load reaches.
            "FENDER_RATE_LIMIT": "1000000/second",
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

    def worker_memory_mib(self) -> tuple[float, float]:
        """The (one) worker's resident and unique MiB now (RSS, USS).

        RSS counts the pages it shares with the master (forked copy-on-write) in full; USS only
        those it alone holds: what one more worker adds to a container's memory.
        """
        import psutil

        children = psutil.Process(self.process.pid).children()
        infos = [child.memory_full_info() for child in children]
        return sum(i.rss for i in infos) / 2**20, sum(i.uss for i in infos) / 2**20

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


@dataclasses.dataclass(frozen=True)
class Load:
    """One round of load on one server: wrk for ``seconds``, else ``requests`` from asyncio."""

    connections: int
    seconds: int
    requests: int
    script: Path | None  # wrk's script; None: no wrk here, the asyncio client

    def run(self, port: int) -> tuple[float, float, float]:
        """Requests/s, p50 and p99 latency in µs."""
        if self.script is not None:
            got = wrk(f"http://127.0.0.1:{port}{PATH}", self.seconds, self.connections,
                      self.script, threads=1)  # fmt: skip
            if got["non2xx"] or got["connect"] + got["read"] + got["write"] + got["timeout"]:
                raise RuntimeError(f"errors under load on port {port}: {got}")
            return got["requests"] / got["seconds"], got["p50_ms"] * 1e3, got["p99_ms"] * 1e3
        throughput, seen = load(port, self.requests, self.connections)
        return throughput, percentile(seen, 0.5) * 1e6, percentile(seen, 0.99) * 1e6


@dataclasses.dataclass
class Served:
    """What one server measured over the rounds."""

    rps: list[float] = dataclasses.field(default_factory=list)
    p50: list[float] = dataclasses.field(default_factory=list)
    p99: list[float] = dataclasses.field(default_factory=list)
    rss: float = 0.0  # worker MiB after the warm-up
    uss: float = 0.0  # of which only the worker holds (not shared with the master)


def warm(server: Server, served: Served, connections: int, requests: int) -> None:
    """Warm ``server`` up (imports, first-call caches); keep its worker's RSS and USS then."""
    load(server.port, requests, connections)
    served.rss, served.uss = server.worker_memory_mib()


def measure(framework: str, rounds: int, work: Load, warmup: int) -> dict[str, Served]:
    """Every role of ``framework`` (paired rounds) and plain gunicorn's bare worker (RSS)."""
    apps = APPS[framework]
    out = {name: Served() for name in ("plain", *apps)}
    with tempfile.TemporaryDirectory(prefix="fender-bench-server-") as tmp:
        plain = Server(framework, apps["bare"][0], Path(tmp), plain=True)
        try:
            warm(plain, out["plain"], work.connections, warmup)
        finally:
            plain.close()
        servers: dict[str, Server] = {}
        try:
            for role, (app, is_plain) in apps.items():
                servers[role] = Server(framework, app, Path(tmp), plain=is_plain)
            for role, server in servers.items():
                warm(server, out[role], work.connections, warmup)
            roles = list(servers)
            for round_no in range(rounds):
                # Rotated, so that no server always runs right after the same one.
                shift = round_no % len(roles)
                for role in roles[shift:] + roles[:shift]:
                    rps, p50, p99 = work.run(servers[role].port)
                    out[role].rps.append(rps)
                    out[role].p50.append(p50)
                    out[role].p99.append(p99)
        finally:
            for server in servers.values():
                server.close()
    return out


def rows(framework: str, got: dict[str, Served]) -> tuple[list[list[str]], float, float, float]:
    """The framework's table rows; fender's paired requests/s ratio, RSS and USS over plain."""
    bare = got["bare"]
    out, ratios = [], {}
    for role, served in got.items():
        if role == "plain":
            continue
        ratios[role] = statistics.median(r / b for r, b in zip(served.rps, bare.rps, strict=True))
        out.append([
            f"{framework} {LABELS[role]}",
            f"{statistics.median(served.rps):,.0f}",
            f"{ratios[role]:.2f}x",
            f"{statistics.median(served.p50):.0f}",
            f"{statistics.median(served.p99):.0f}",
            f"{served.rss:.1f}",
            f"{served.rss - got['plain'].rss:+.1f}",
            f"{served.uss:.1f}",
            f"{served.uss - got['plain'].uss:+.1f}",
        ])  # fmt: skip
    fender = got["fender"]
    return out, ratios["fender"], fender.rss - got["plain"].rss, fender.uss - got["plain"].uss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=6, help="paired rounds (default 6)")
    parser.add_argument("--seconds", type=int, default=3, help="wrk: seconds a round and server")
    parser.add_argument("--requests", type=int, default=4000, help="no wrk: requests a round")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--warmup", type=int, default=2000, help="requests before measuring")
    parser.add_argument("--no-wrk", action="store_true", help="the asyncio client, not wrk")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--smoke", action="store_true", help="a few requests, nothing written")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.seconds, args.requests, args.warmup = 1, 1, 40, 40
        args.connections, args.no_write = 4, True
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    table_rows, notes = [], []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fender-bench-wrk-") as tmp:
        script = Path(tmp) / "done.lua"
        script.write_text(WRK_DONE, encoding="utf-8")
        work = Load(args.connections, args.seconds, args.requests, script if use_wrk else None)
        for framework in APPS:
            got = measure(framework, args.rounds, work, args.warmup)
            framework_rows, ratio, over, unique = rows(framework, got)
            table_rows += framework_rows
            notes.append(
                f"- requests/s: {target_note(framework, ratio, RPS_TARGET, at_most=False)}"
            )
            notes.append(
                f"- worker RSS over bare: {target_note(framework, over, RSS_TARGET, unit=' MiB')}"
            )
            notes.append(
                f"- worker USS over bare (no target; what one more worker adds): {framework} "
                f"{unique:+.2f} MiB"
            )
    seconds = time.monotonic() - started
    table = markdown_table(
        ["app", "requests/s (median round)", "requests/s vs bare (paired)", "p50 µs", "p99 µs",
         "worker RSS MiB after warm-up", "RSS over bare (plain gunicorn)", "worker USS MiB",
         "USS over bare"],
        table_rows,
    )  # fmt: skip
    client = (
        f"wrk, 1 thread, {args.connections} connections, {args.seconds} s a round and server"
        if use_wrk
        else f"an asyncio client (no wrk here), {args.connections} connections, "
        f"{args.requests} requests a round and server"
    )
    intro = (
        f"`bench/bench_server.py --rounds {args.rounds} --seconds {args.seconds} --connections "
        f"{args.connections}`, {seconds:.0f} s: GET {PATH} through real gunicorn (fender's "
        "config, one worker: fender's UvicornWorker for FastAPI, gthread with 8 threads for "
        f"Flask) over loopback TCP, from {client}, on the same 2-core machine. fender as a "
        "default install runs: rate limiter in memory (a limit no request reaches), security "
        "headers, monitor, request ids, a JSON access line per request to the server's stdout "
        "(a file here), metrics in multiprocess mode; the bare app runs under the same "
        "gunicorn config; the peer stack (`bench/_peers.py`, limits in memory) under plain "
        "gunicorn, as it brings no config. Ratio: median over rounds of a server's requests/s "
        "divided by bare's (each round times every server back to back; target for fender: "
        f">= {RPS_TARGET:.2f}x). Worker RSS: the worker's "
        f"resident size after {args.warmup} warm-up requests; over bare: against the bare app "
        "under plain gunicorn (stock uvicorn worker or gthread, no fender configuration: "
        f"nothing of fender imported), target <= {RSS_TARGET:.0f} MiB. Worker USS: the pages "
        "only the worker holds (psutil's uss); the rest of its RSS is shared with the master "
        "(what gunicorn and its config imported before forking) and is paid once a container."
    )
    verdict = "Targets (issue 16), from this run:\n\n" + "\n".join(notes)
    publish(
        "server",
        ["## Through a real server (what a client sees)", machine_header(PACKAGES), intro,
         verdict, table],
        write=not args.no_write,
    )  # fmt: skip


if __name__ == "__main__":
    main()
