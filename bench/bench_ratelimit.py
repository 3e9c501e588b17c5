"""Rate-limit decisions per second: fender against limits and throttled-py, and on Redis.

Run: .venv/bin/python bench/bench_ratelimit.py [--quick | --smoke] [--no-write]

Memory: 1 key and 10k keys (cycled), a limit high enough that every decision is an admission
(the full read-compute-write path). Each library is timed doing the same work, in two forms:

* ``decision + headers``: the verdict and what the rate-limit headers need (remaining, reset).
  fender: ``hit()`` returns a ``Decision`` with all of it, computed in that call; the loop
  reads ``allowed``, ``remaining`` and ``reset_after``. limits: ``hit()`` returns only a bool,
  so the headers take ``get_window_stats()`` as well (a second storage read, as limits' users
  such as Flask-Limiter do); the loop reads ``remaining`` and ``reset_time``. throttled-py:
  ``limit()``, then ``limited`` and the lazily built ``state`` (remaining, reset_after).
* ``verdict only``: allowed or denied, nothing else. limits: ``hit()`` (a bool). throttled-py:
  ``limit().limited``. fender has no lighter call: ``hit().allowed`` still builds the decision
  with the header figures, so here fender does more work than the others.

The machine is shared and noisy: every contender runs one batch per round, the rounds
interleave the contenders (and pause 20 ms after each batch so that limits' expiry timer
thread runs between batches, not inside the next contender's), and each row shows the best
batch. The ratios are the median over the rounds of fender's rate over the rate of limits'
fastest strategy (fixed window) in the same round.

Redis: a throwaway redis-server on a free loopback port (stopped by its PID at the end);
round trips per decision counted with INFO commandstats.

Tiers: the limiter a fender app runs (``TieredLimiter``: breaker, fallback, metrics) in
memory, on Redis in lease mode (the default) and in exact mode, in µs per decision and Redis
round trips per request, far from the limit; and the asyncio limiter's event-loop lag while 32
tasks decide concurrently on Redis. Prints the section and writes it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from _results import machine_header, markdown_table, publish
from _servers import free_port

from fender.ratelimit import MemoryLimiter, RedisLimiter, parse_policy
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._lease import LeaseConfig
from fender.ratelimit._tiered import AsyncTieredLimiter, TieredLimiter

RATE = "1000000/second"
REPEATS = 3
WORKS = ("decision + headers", "verdict only")
Call = Callable[[str], object]


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


def rate(call: Call, keys: list[str], n: int) -> float:
    """Best decisions per second over REPEATS runs of ``n`` calls cycling through ``keys``."""
    sequence = [keys[i % len(keys)] for i in range(n)]
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        for key in sequence:
            call(key)
        best = max(best, n / (time.perf_counter() - start))
    return best


Works = dict[str, Callable[[], Call]]
"""Per work (see the module docstring), a factory of a fresh limiter's call."""


def fender_works(algorithm: str) -> Works:
    policy = parse_policy(RATE)

    def headers() -> Call:
        hit = MemoryLimiter(algorithm=algorithm).hit

        def call(key: str) -> object:
            decision = hit(key, policy)
            return decision.allowed, decision.remaining, decision.reset_after

        return call

    def verdict() -> Call:
        hit = MemoryLimiter(algorithm=algorithm).hit
        return lambda key: hit(key, policy).allowed

    return {WORKS[0]: headers, WORKS[1]: verdict}


def limits_works() -> dict[str, Works]:
    from limits import parse, storage, strategies

    item = parse(RATE)

    def works(cls: type) -> Works:
        def headers() -> Call:
            limiter = cls(storage.MemoryStorage())

            def call(key: str) -> object:
                allowed = limiter.hit(item, key)
                stats = limiter.get_window_stats(item, key)
                return allowed, stats.remaining, stats.reset_time

            return call

        def verdict() -> Call:
            limiter = cls(storage.MemoryStorage())
            return lambda key: limiter.hit(item, key)

        return {WORKS[0]: headers, WORKS[1]: verdict}

    return {
        "limits fixed window": works(strategies.FixedWindowRateLimiter),
        "limits moving window": works(strategies.MovingWindowRateLimiter),
        "limits sliding window counter": works(strategies.SlidingWindowCounterRateLimiter),
    }


def throttled_works() -> dict[str, Works]:
    from throttled import MemoryStore, RateLimiterType, Throttled, per_sec

    def works(kind: RateLimiterType) -> Works:
        def make() -> Throttled:
            return Throttled(using=kind.value, quota=per_sec(1_000_000), store=MemoryStore())

        def headers() -> Call:
            limit = make().limit

            def call(key: str) -> object:
                result = limit(key)
                state = result.state
                return result.limited, state.remaining, state.reset_after

            return call

        def verdict() -> Call:
            limit = make().limit
            return lambda key: limit(key).limited

        return {WORKS[0]: headers, WORKS[1]: verdict}

    return {
        "throttled-py GCRA": works(RateLimiterType.GCRA),
        "throttled-py sliding window": works(RateLimiterType.SLIDING_WINDOW),
    }


def memory_contenders() -> dict[str, Works]:
    contenders = {
        "fender GCRA": fender_works("gcra"),
        "fender sliding window": fender_works("sliding"),
    }
    for peers, package in ((limits_works, "limits"), (throttled_works, "throttled-py")):
        try:
            contenders.update(peers())
        except ImportError:
            print(f"{package} is not installed: pip install {package}", file=sys.stderr)
    return contenders


def median_ratio(ours: list[float], theirs: list[float]) -> float:
    """The median over the rounds of ``ours / theirs`` (paired: one round, one ratio)."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def interleaved(
    calls: dict[str, Call], keys: list[str], rounds: int, batch: int
) -> dict[str, list[float]]:
    """Decisions per second of each call, one batch per call per round, rounds interleaved."""
    sequence = [keys[i % len(keys)] for i in range(batch)]
    rates: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for key in sequence:
                call(key)
            rates[name].append(batch / (time.perf_counter() - start))
            time.sleep(0.02)
    return rates


def memory_rows(rounds: int, batch: int) -> tuple[list[tuple[str, str, str, float]], list[str]]:
    """The memory rows ``(implementation, keys, work, best rate)`` and the ratio lines."""
    contenders = memory_contenders()
    rows = []
    notes = []
    for label, count in (("1 key", 1), ("10k keys", 10_000)):
        keys = [f"ip:{i}" for i in range(count)]
        for work in WORKS:
            calls = {name: works[work]() for name, works in contenders.items()}
            rates = interleaved(calls, keys, rounds, batch)
            rows += [(name, label, work, max(rates[name])) for name in calls]
            peers = [name for name in calls if name.startswith("limits")]
            if not peers:
                continue
            fastest = max(peers, key=lambda name: max(rates[name]))
            ratios = ", ".join(
                f"{name} {median_ratio(rates[name], rates[fastest]):.2f}x"
                for name in ("fender GCRA", "fender sliding window")
            )
            notes.append(f"- {label}, {work}: against `{fastest}`: {ratios}")
    return rows, notes


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


TIER_RATE = "1000000/minute"
PACKAGES = ("redis", "limits", "throttled-py")


def tier_rows(url: str, n: int) -> list[list[str]]:
    """µs per decision and round trips per request of the app's limiter, per tier and mode."""
    policy = parse_policy(TIER_RATE)
    config = RateLimitConfig(default=policy, instances=1, timeout=1.0)
    shared = RateLimitConfig(default=policy, instances=1, timeout=1.0, redis_url=url)
    limiters = [
        ("memory (no REDIS_URL)", TieredLimiter(config)),
        ("Redis, lease mode (the default)", TieredLimiter(shared, lease=LeaseConfig())),
        ("Redis, exact mode", TieredLimiter(shared, lease=LeaseConfig(mode="exact"))),
    ]
    rows = []
    for name, limiter in limiters:
        items = [("b:{203.0.113.9}:ip", policy)]
        limiter.decide(items)  # connect, load the scripts
        best = float("inf")
        trips = 0.0
        for _ in range(REPEATS):
            before = limiter.round_trips
            start = time.perf_counter()
            for _ in range(n):
                limiter.decide(items)
            best = min(best, (time.perf_counter() - start) / n)
            trips = (limiter.round_trips - before) / n
        rows.append([name, f"{best * 1e6:.1f}", f"{trips:.3f}"])
        limiter.close()
    return rows


async def _loop_lag(url: str, mode: str, n: int) -> tuple[float, float, int]:
    policy = parse_policy(TIER_RATE)
    config = RateLimitConfig(default=policy, instances=1, timeout=0.05, redis_url=url)
    lease = LeaseConfig(mode="exact") if mode == "exact" else LeaseConfig(mode="lease")
    limiter = AsyncTieredLimiter(config, lease=lease)
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - start - 0.001)

    async def client(worker: int) -> None:
        items = [(f"b:{{{worker}}}:ip", policy)]
        for _ in range(n // 32):
            await limiter.decide(items)
            # A request's own I/O (reading it, sending its response) yields to the loop between
            # decisions; without it a leased decision, which never suspends, would starve the
            # ticker and the lag would measure this loop, not the limiter.
            await asyncio.sleep(0)

    tick = asyncio.create_task(ticker())
    start = time.perf_counter()
    await asyncio.gather(*(client(w) for w in range(32)))
    elapsed = time.perf_counter() - start
    done.set()
    await tick
    await limiter.aclose()
    lags.sort()
    p99 = lags[int(len(lags) * 0.99)] if lags else 0.0
    return p99, max(lags, default=0.0), round(elapsed / n * 1e6)


def loop_rows(url: str, n: int) -> list[list[str]]:
    """The asyncio limiter under 32 concurrent tasks: its µs per decision and the loop's lag."""
    rows = []
    for mode in ("lease", "exact"):
        p99, worst, us = asyncio.run(_loop_lag(url, mode, n))
        rows.append([f"asyncio, {mode} mode", str(us), f"{p99 * 1e3:.2f}", f"{worst * 1e3:.2f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: checks it runs")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.smoke:
        rounds, batch, n_redis, n_tiers = 1, 500, 200, 500
    elif args.quick:
        rounds, batch, n_redis, n_tiers = 3, 5_000, 2_000, 5_000
    else:
        rounds, batch, n_redis, n_tiers = 12, 20_000, 20_000, 20_000
    rows, notes = memory_rows(rounds, batch)
    table = [
        [f"{name} (memory)", label, work, f"{per_second:,.0f}", "-"]
        for name, label, work, per_second in rows
    ]
    table += [
        [name, label, WORKS[0], f"{per_second:,.0f}", trips]
        for name, label, per_second, trips in redis_rows(n_redis)
    ]
    with redis_server() as client:
        kwargs = client.connection_pool.connection_kwargs
        url = f"redis://{kwargs['host']}:{kwargs['port']}/0"
        tiers = tier_rows(url, n_tiers)
        loop = loop_rows(url, n_tiers)
    publish(
        "ratelimit",
        [
            "## Rate limit: decisions per second, memory and Redis; lease and exact modes",
            machine_header(PACKAGES),
            (
                f"`bench/bench_ratelimit.py`: memory: best of {rounds} interleaved batches of "
                f"{batch:,} decisions; Redis: best of {REPEATS} runs of {n_redis:,}."
            ),
            markdown_table(
                ["implementation", "keys", "work", "decisions/s", "round trips/decision"], table
            ),
            (
                "- decision + headers: fender `hit()`: a `Decision` (verdict, remaining, reset, "
                "retry after), all computed in that call; limits `hit()` (a bool) plus "
                "`get_window_stats()` (a second storage read); throttled-py `limit()` and its "
                "`state`.\n- verdict only: limits `hit()` and throttled-py `limit().limited` "
                "compute the verdict alone; fender has no lighter call, so its row still computes "
                "the whole `Decision`."
            ),
            "Median over the rounds of fender's decisions/s over limits' fastest strategy:\n\n"
            + "\n".join(notes),
            (
                "The app's limiter (`TieredLimiter`: breaker, fallback tier, metrics), one key "
                f"far from its limit ({TIER_RATE}), best of {REPEATS} runs of {n_tiers:,}:"
            ),
            markdown_table(["tier", "µs/decision", "Redis round trips/request"], tiers),
            (
                "The asyncio limiter (`AsyncTieredLimiter`, redis.asyncio) with 32 tasks deciding "
                "at once, each yielding to the loop between decisions as a request's own I/O "
                "does, and a task sleeping 1 ms in a loop: its lateness is the event loop's lag "
                "(a Redis call never blocks the loop; the rate-limit timeout bounds each wait):"
            ),
            markdown_table(["limiter", "µs/decision", "loop lag p99 ms", "loop lag max ms"], loop),
        ],
        write=not (args.no_write or args.smoke),
    )


if __name__ == "__main__":
    main()
