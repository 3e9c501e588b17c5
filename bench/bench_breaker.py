"""Per-call overhead of fender's circuit breaker against pybreaker, circuitbreaker and purgatory.

Run with ``.venv/bin/python bench/bench_breaker.py``; prints a Markdown table to stdout.

Each row is the best of several runs (interleaved across rows) of a tight loop calling a
trivial function (``return 1``), so it is the breaker's overhead plus one Python call.
"ratio" is the row's time over fender's (default config) in the same scenario: above 1 means
slower than fender.

Scenarios:
* closed, sync / async: the breaker admits the call and records its success;
* open + fallback, sync / async: the breaker rejects the call and a fallback returns a value
  (libraries without a fallback option raise, and the loop catches the exception and calls the
  fallback). circuitbreaker awaits the fallback of an async function, so its async row uses an
  async fallback; fender accepts either, and has a row for each.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import platform
import time
from collections.abc import Awaitable, Callable

import circuitbreaker
import purgatory
import pybreaker
from purgatory.domain.model import OpenedState

from fender.resilience import BreakerConfig, CircuitBreaker

LOOPS = 20_000
REPEATS = 25


def run_sync(fn: Callable[[], object]) -> float:
    loops = range(LOOPS)
    start = time.perf_counter_ns()
    for _ in loops:
        fn()
    return (time.perf_counter_ns() - start) / LOOPS


def run_async(fn: Callable[[], Awaitable[object]]) -> float:
    async def run() -> float:
        loops = range(LOOPS)
        start = time.perf_counter_ns()
        for _ in loops:
            await fn()
        return (time.perf_counter_ns() - start) / LOOPS

    return asyncio.run(run())


def sync(fn: Callable[[], object]) -> Callable[[], float]:
    return lambda: run_sync(fn)


def async_(fn: Callable[[], Awaitable[object]]) -> Callable[[], float]:
    return lambda: run_async(fn)


def target() -> int:
    return 1


async def target_async() -> int:
    return 1


def failing() -> int:
    raise ConnectionError


async def failing_async() -> int:
    raise ConnectionError


def fallback_value(*_: object) -> int:
    return 0


async def fallback_async(*_: object) -> int:
    return 0


def trip(call: Callable[[], object], times: int = 3) -> None:
    for _ in range(times):
        try:
            call()
        except Exception:  # tripping the breaker on purpose
            continue


def trip_async(call: Callable[[], Awaitable[object]], times: int = 3) -> None:
    async def run() -> None:
        for _ in range(times):
            try:
                await call()
            except Exception:  # tripping the breaker on purpose
                continue

    asyncio.run(run())


def guarded(call: Callable[[], object], error: type[BaseException]) -> Callable[[], object]:
    """A rejection handled the way a caller of a library without fallbacks must do it."""

    def run() -> object:
        try:
            return call()
        except error:
            return fallback_value()

    return run


def guarded_async(
    call: Callable[[], Awaitable[object]], error: type[BaseException]
) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        try:
            return await call()
        except error:
            return fallback_value()

    return run


def closed_sync() -> list[tuple[str, Callable[[], float]]]:
    ours = CircuitBreaker("bench")
    lean = CircuitBreaker(
        "bench-lean",
        BreakerConfig(failure_rate_threshold=None, slow_call_duration_threshold=None),
    )
    py = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=60)
    pg = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    return [
        ("fender (default: time window, slow calls)", sync(ours(target))),
        ("fender (consecutive failures only)", sync(lean(target))),
        ("pybreaker", sync(py(target))),
        ("circuitbreaker", sync(cb(target))),
        ("purgatory", sync(pg(circuit="bench")(target))),
        ("no breaker (bare call)", sync(target)),
    ]


def closed_async() -> list[tuple[str, Callable[[], float]]]:
    ours = CircuitBreaker("bench-async")
    lean = CircuitBreaker(
        "bench-async-lean",
        BreakerConfig(failure_rate_threshold=None, slow_call_duration_threshold=None),
    )
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=60)
    pg = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)

    async def purgatory_call() -> int:
        async with await pg.get_breaker("bench-async"):
            return await target_async()

    return [
        ("fender (default: time window, slow calls)", async_(ours(target_async))),
        ("fender (consecutive failures only)", async_(lean(target_async))),
        ("circuitbreaker", async_(cb(target_async))),
        ("purgatory", async_(purgatory_call)),
        ("no breaker (bare call)", async_(target_async)),
    ]


def open_with_fallback() -> list[tuple[str, Callable[[], float]]]:
    ours = CircuitBreaker(
        "bench-open",
        BreakerConfig(failure_threshold=1, recovery_timeout=3600.0),
        fallback=fallback_value,
    )
    trip(ours(failing))
    py = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    trip(py(failing))
    cb = circuitbreaker.CircuitBreaker(
        failure_threshold=1, recovery_timeout=3600, fallback_function=fallback_value
    )
    cb_failing = cb(failing)
    trip(cb_failing)
    pg = purgatory.SyncCircuitBreakerFactory(default_threshold=1, default_ttl=3600)
    pg_decorate = pg(circuit="bench-open")
    trip(pg_decorate(failing))
    return [
        ("fender", sync(ours(target))),
        (
            "pybreaker (except + fallback)",
            sync(guarded(py(target), pybreaker.CircuitBreakerError)),
        ),
        ("circuitbreaker (fallback_function)", sync(cb(target))),
        ("purgatory (except + fallback)", sync(guarded(pg_decorate(target), OpenedState))),
    ]


def open_with_fallback_async() -> list[tuple[str, Callable[[], float]]]:
    config = BreakerConfig(failure_threshold=1, recovery_timeout=3600.0)
    ours = CircuitBreaker("bench-open-async", config, fallback=fallback_value)
    trip_async(ours(failing_async))
    ours_async = CircuitBreaker("bench-open-async-fallback", config, fallback=fallback_async)
    trip_async(ours_async(failing_async))
    cb = circuitbreaker.CircuitBreaker(
        failure_threshold=1, recovery_timeout=3600, fallback_function=fallback_async
    )
    trip_async(cb(failing_async))
    pg = purgatory.AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=3600)
    pg_decorate = pg(circuit="bench-open-async")
    trip_async(pg_decorate(failing_async))
    return [
        ("fender (sync fallback)", async_(ours(target_async))),
        ("fender (async fallback)", async_(ours_async(target_async))),
        ("circuitbreaker (async fallback_function)", async_(cb(target_async))),
        (
            "purgatory (except + fallback)",
            async_(guarded_async(pg_decorate(target_async), OpenedState)),
        ),
    ]


def header() -> str:
    versions = ", ".join(
        f"{package} {importlib.metadata.version(package)}"
        for package in ("fender", "pybreaker", "circuitbreaker", "purgatory")
    )
    return (
        f"Machine: {platform.platform()}, {platform.machine()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs. Libraries: {versions}. "
        f"Best of {REPEATS} runs of {LOOPS:,} calls."
    )


def main() -> None:
    # Breakers log their transitions; the benchmark trips some on purpose.
    logging.disable(logging.CRITICAL)
    scenarios = {
        "closed, sync": closed_sync(),
        "closed, async": closed_async(),
        "open + fallback, sync": open_with_fallback(),
        "open + fallback, async": open_with_fallback_async(),
    }
    cases = [(scenario, name, run) for scenario, rows in scenarios.items() for name, run in rows]
    best = [float("inf")] * len(cases)
    # Round-robin over the cases, keeping each one's best run, so that a burst of load from
    # elsewhere on the machine falls on every library rather than on one.
    for _ in range(REPEATS):
        for index, (_, _, run) in enumerate(cases):
            best[index] = min(best[index], run())
    lines = [
        header(),
        "",
        "| scenario | library | ns/call | ratio to fender |",
        "|---|---|---:|---:|",
    ]
    reference: dict[str, float] = {}
    for (scenario, name, _), ns in zip(cases, best, strict=True):
        ours = reference.setdefault(scenario, ns)  # the first row of a scenario is fender's
        lines.append(f"| {scenario} | {name} | {ns:,.0f} | {ns / ours:.2f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
