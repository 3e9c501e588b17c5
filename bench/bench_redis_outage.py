"""Per-call latency of a Redis GET during an outage: fender's store vs plain redis-py.

Starts its own redis-server on a free loopback port (by PID; nothing else is touched), then for
each fault -- killed (SIGKILL: connection refused) and hung (SIGSTOP: connected, silent) --
measures:

* fender ``ResilientRedis`` once its breaker is open (served by the in-memory tier);
* plain ``redis.Redis`` with redis-py's defaults (capped to a few calls: seconds each);
* plain ``redis.Redis`` tuned: 0.5 s timeouts, no retries.

Prints a Markdown table. Usage::

    .venv/bin/python bench/bench_redis_outage.py [--calls 2000] [--default-calls 3]
        [--hung-default-calls 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from _servers import free_port
from redis.backoff import NoBackoff
from redis.retry import Retry

from fender.redis import RedisStoreConfig, ResilientRedis, redis_client
from fender.resilience import BreakerConfig, CircuitBreaker


def start_redis(binary: str, port: int, directory: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        time.sleep(0.02)
    process.kill()
    raise RuntimeError("redis-server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
    process.wait(10)


def timed(call, count: int, *args) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        with contextlib.suppress(redis.RedisError):
            call(*args)
        samples.append(time.perf_counter() - started)
    return samples


def describe(samples: list[float]) -> tuple[str, str, str, str]:
    ordered = sorted(samples)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]

    def fmt(seconds: float) -> str:
        if seconds >= 1:
            return f"{seconds:.2f} s"
        if seconds >= 1e-3:
            return f"{seconds * 1e3:.1f} ms"
        return f"{seconds * 1e6:.1f} µs"

    return str(len(samples)), fmt(statistics.median(ordered)), fmt(p99), fmt(ordered[-1])


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--default-calls", type=int, default=3)
    parser.add_argument("--hung-default-calls", type=int, default=1)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed")
    server_version = (
        subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
        .stdout.split()[2]
        .removeprefix("v=")
    )
    rows = []
    for fault in ("killed", "hung"):
        directory = tempfile.mkdtemp(prefix="fender-bench-redis-")
        port = free_port()
        process = start_redis(binary, port, directory)
        url = f"redis://127.0.0.1:{port}/0"
        store = ResilientRedis(
            redis_client(url),  # NETWORK_TIMEOUT_SEC default: 0.5 s
            config=RedisStoreConfig(name="bench", probe_interval=1.0),
            breaker=CircuitBreaker("bench-redis", BreakerConfig(failure_threshold=5,
                                                                recovery_timeout=600.0)),
        )  # fmt: skip
        defaults = redis.Redis(host="127.0.0.1", port=port)
        tuned = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )  # fmt: skip
        store.set("key", b"value")
        defaults.get("key")
        tuned.get("key")
        if fault == "killed":
            process.kill()
            process.wait()
        else:
            os.kill(process.pid, signal.SIGSTOP)
        tripping = timed(store.get, 5, "key")
        assert store.degraded, "the breaker should be open"
        open_samples = timed(store.get, args.calls, "key")
        assert store.get_result("key").value == b"value"
        rows.append((fault, "fender ResilientRedis, calls that tripped the breaker",
                     *describe(tripping)))  # fmt: skip
        rows.append((fault, "fender ResilientRedis, breaker open (memory tier)",
                     *describe(open_samples)))  # fmt: skip
        rows.append((fault, "redis-py, tuned (0.5 s timeouts, no retry)",
                     *describe(timed(tuned.get, 10, "key"))))  # fmt: skip
        count = args.default_calls if fault == "killed" else args.hung_default_calls
        rows.append((fault, "redis-py, defaults",
                     *describe(timed(defaults.get, count, "key"))))  # fmt: skip
        store.close()
        defaults.close()
        tuned.close()
        stop(process)
        shutil.rmtree(directory, ignore_errors=True)
    python = platform.python_version()
    print(f"### GET latency during a Redis outage ({machine()})\n")
    print(f"Python {python}, redis-py {redis.__version__}, redis-server {server_version}\n")
    print("| fault | client | calls | median | p99 | max |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
