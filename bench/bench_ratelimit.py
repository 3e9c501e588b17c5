"""Rate-limit decisions per second: fender against limits and throttled-py, and on Redis.

Run: .venv/bin/python bench/bench_ratelimit.py [--quick]

Memory: 1 key and 10k keys (cycled), a limit high enough that every decision is an admission
(the full read-compute-write path). Redis: a throwaway redis-server on a free loopback port
(stopped by its PID at the end); round trips per decision counted with INFO commandstats.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from fender.ratelimit import MemoryLimiter, RedisLimiter, parse_policy

RATE = "1000000/second"
REPEATS = 3


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def rate(call: Callable[[str], object], keys: list[str], n: int) -> float:
    """Best decisions per second over REPEATS runs of ``n`` calls cycling through ``keys``."""
    sequence = [keys[i % len(keys)] for i in range(n)]
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        for key in sequence:
            call(key)
        best = max(best, n / (time.perf_counter() - start))
    return best


def memory_contenders() -> dict[str, Callable[[], Callable[[str], object]]]:
    policy = parse_policy(RATE)

    def fender(algorithm: str) -> Callable[[], Callable[[str], object]]:
        def make() -> Callable[[str], object]:
            limiter = MemoryLimiter(algorithm=algorithm)
            return lambda key: limiter.hit(key, policy)

        return make

    contenders = {
        "fender GCRA": fender("gcra"),
        "fender sliding window": fender("sliding"),
    }
    try:
        from limits import parse, storage, strategies

        item = parse(RATE)

        def limits(cls: type) -> Callable[[], Callable[[str], object]]:
            def make() -> Callable[[str], object]:
                limiter = cls(storage.MemoryStorage())
                return lambda key: limiter.hit(item, key)

            return make

        contenders["limits fixed window"] = limits(strategies.FixedWindowRateLimiter)
        contenders["limits moving window"] = limits(strategies.MovingWindowRateLimiter)
        contenders["limits sliding window counter"] = limits(
            strategies.SlidingWindowCounterRateLimiter
        )
    except ImportError:
        print("limits is not installed: pip install limits", file=sys.stderr)
    try:
        from throttled import MemoryStore, RateLimiterType, Throttled, per_sec

        def throttled(kind: RateLimiterType) -> Callable[[], Callable[[str], object]]:
            def make() -> Callable[[str], object]:
                limiter = Throttled(using=kind.value, quota=per_sec(1_000_000), store=MemoryStore())
                return limiter.limit

            return make

        contenders["throttled-py GCRA"] = throttled(RateLimiterType.GCRA)
        contenders["throttled-py sliding window"] = throttled(RateLimiterType.SLIDING_WINDOW)
    except ImportError:
        print("throttled-py is not installed: pip install throttled-py", file=sys.stderr)
    return contenders


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> redis.Redis:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="fender-bench-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield client
    finally:
        client.close()
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def redis_rows(n: int) -> list[tuple[str, str, float, str]]:
    rows = []
    with redis_server() as client:
        server_version = client.info("server")["redis_version"]
        policy = parse_policy(RATE)
        three = [
            ("b:{203.0.113.9}:ip", parse_policy("1000000/second; 10000000/hour")),
            ("b:{203.0.113.9}:user", parse_policy("1000000/second")),
        ]
        for algorithm in ("gcra", "sliding"):
            limiter = RedisLimiter(client, algorithm=algorithm)
            for label, count, call in (
                ("1 key", 1, lambda key, lim=limiter: lim.hit(key, policy)),
                ("10k keys", 10_000, lambda key, lim=limiter: lim.hit(key, policy)),
                ("3 limits, 2 keys", 1, lambda _key, lim=limiter: lim.decide(three)),
            ):
                keys = [f"b:{{{i}}}:ip" for i in range(count)]
                call(keys[0])  # load the script
                before = calls(client)
                per_second = rate(call, keys, n)
                after = calls(client)
                # INFO commandstats counts the INFO call itself; the script's inner commands
                # (GET, SET, TIME) are not round trips: count only what the client sent.
                sent = sum(
                    after[name] - before.get(name, 0)
                    for name in after
                    if name in {"evalsha", "eval", "script|load", "script"}
                )
                rows.append(
                    (
                        f"fender {algorithm} on Redis {server_version}",
                        label,
                        per_second,
                        f"{sent / (n * REPEATS):.2f}",
                    )
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n_memory = 20_000 if args.quick else 200_000
    n_redis = 2_000 if args.quick else 20_000

    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; "
        f"fender {version('fender')}, limits {version('limits')}, "
        f"throttled-py {version('throttled-py')}, redis-py {version('redis')}"
    )
    print()
    print("| implementation | keys | decisions/s | round trips/decision |")
    print("| --- | --- | ---: | ---: |")
    results: dict[tuple[str, str], float] = {}
    for name, make in memory_contenders().items():
        for label, count in (("1 key", 1), ("10k keys", 10_000)):
            keys = [f"ip:{i}" for i in range(count)]
            per_second = rate(make(), keys, n_memory)
            results[name, label] = per_second
            print(f"| {name} (memory) | {label} | {per_second:,.0f} | - |", flush=True)
    for name, label, per_second, trips in redis_rows(n_redis):
        print(f"| {name} | {label} | {per_second:,.0f} | {trips} |", flush=True)
    print()
    for label in ("1 key", "10k keys"):
        fastest = max(
            (value for (name, lab), value in results.items() if lab == label and "limits" in name),
            default=0.0,
        )
        if fastest:
            ratios = ", ".join(
                f"{name} {results[name, label] / fastest:.2f}x"
                for name in ("fender GCRA", "fender sliding window")
            )
            print(f"- {label}: against the fastest `limits` strategy: {ratios}")


if __name__ == "__main__":
    main()
