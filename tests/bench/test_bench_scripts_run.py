"""Every benchmark under bench/ still runs against the current API (``--smoke``).

Numbers are not checked here: speed is measured by bench/, never asserted in tests. Each run
must print the rows its table is about, so a benchmark that measures nothing fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

# The peer stacks are measured where the dev extra's packages are installed (their rows are
# left out otherwise), the Redis rows where redis-server is.
PEER_ROWS = [
    row
    for row, package in (("peer stack (instrumentator", "slowapi"),
                         ("peer stack (exporter", "flask_limiter"))
    if importlib.util.find_spec(package) is not None
]  # fmt: skip
REDIS_ROWS = (
    ["FastAPI + fender.install, limits shared through Redis",
     "Flask + Fender(app), limits shared through Redis"]
    if shutil.which("redis-server") else []
)  # fmt: skip

# script, its extra arguments, rows its output must hold, seconds it may take
RUNS = [
    ("bench_headers.py", [], ["fender.install, headers on (defaults)",
                              "Fender(app), headers on (defaults)"], 120),
    ("bench_logs.py", [], ["access line: redaction on (default)",
                           "access line: + FENDER_LOG_FILE"], 120),
    ("bench_monitor.py", [], ["fender.install, monitor on", "/status summary, 4 workers"], 120),
    ("bench_request_path.py", [], ["FastAPI + fender.install, default install",
                                   "Flask + Fender(app), default install", "↳ rate limiter off",
                                   *PEER_ROWS, *REDIS_ROWS], 120),
    ("bench_request_path.py", ["--multiprocess", "--no-redis"],
     ["FastAPI + fender.install, default install", "Flask + Fender(app), default install"], 120),
    ("bench_server.py", [], ["| FastAPI bare |", "| FastAPI + fender, default install |",
                             "| Flask bare |", "| Flask + fender, default install |"], 120),
    ("bench_startup.py", [], ["fender probe URL", "python -c 'import fender'"], 120),
]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "extra", "expected", "timeout"),
    RUNS,
    ids=[" ".join([script, *extra]) for script, extra, _, _ in RUNS],
)
def test_the_benchmark_runs(script, extra, expected, timeout):
    # A multiprocess directory of the caller's would switch prometheus_client's mode.
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *extra],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for row in expected:
        assert row in done.stdout
