"""Health endpoints in process: /health/live and /health/quick latency, and /health's fan-out.

/health with 5 checks of 100 ms each must answer in about 100 ms (the checks run
concurrently), not 500. Writes its section of bench/RESULTS.md.

Run: .venv/bin/python bench/bench_health.py
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine_header, markdown_table, publish


async def call(app: Any, path: str) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    await app(scope, receive, send)
    return status


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def latencies(app: Any, path: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        status = await call(app, path)
        samples.append((time.perf_counter() - start) * 1e6)
        assert status == 200, (path, status)
    return samples


async def main() -> None:
    from fastapi import FastAPI

    import fender
    from fender.observability._logging import configure_logging
    from fender.settings import load_settings

    app = FastAPI()
    runtime = fender.install(
        app, env="production", secret_key=secrets.token_urlsafe(48),
        runtime_dir=f"/tmp/fender-bench-{os.getpid()}", admin_policy="always",
    )  # fmt: skip
    with Path(os.devnull).open("w") as null:  # noqa: ASYNC230  (set-up, before timing)
        configure_logging(load_settings({}, env_file=None), fmt="json", stream=null)

        async def slow_dependency() -> bool:
            await asyncio.sleep(0.1)
            return True

        for i in range(5):
            runtime.health.add(slow_dependency, name=f"dependency_{i}", critical=False)
        await runtime.startup()
        try:
            rows = []
            for path, count in (("/health/live", 5000), ("/health/quick", 5000)):
                await latencies(app, path, 500)  # warm up
                samples = await latencies(app, path, count)
                rows.append(
                    (
                        path,
                        count,
                        f"{statistics.median(samples):.1f}",
                        f"{percentile(samples, 0.99):.1f}",
                        "-",
                    )
                )
            runs = []
            for _ in range(10):
                start = time.perf_counter()
                assert await call(app, "/health/detailed") == 200
                runs.append((time.perf_counter() - start) * 1000)
            rows.append(
                ("/health/detailed, 5 checks of 100 ms", 10, "-", "-",
                 f"{statistics.median(runs):.1f} ms (max {max(runs):.1f})")
            )  # fmt: skip
        finally:
            await runtime.shutdown()
    table = markdown_table(("endpoint", "requests", "p50 µs", "p99 µs", "wall time"), rows)
    publish(
        "health",
        [
            "## Health endpoints (in process)",
            machine_header(["fastapi", "starlette"]),
            (
                "`bench/bench_health.py`: FastAPI + fender.install, each request awaited "
                "straight into the ASGI app. /health/live and /health/quick do no I/O; "
                "/health/detailed runs every check concurrently, so 5 checks of 100 ms cost "
                "about 100 ms (public /health runs them at most once a second)."
            ),
            table,
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
