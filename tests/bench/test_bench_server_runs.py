"""The through-a-server benchmark still runs: real gunicorn, both frameworks (``--smoke``: a
few requests per server, nothing written).

Numbers are not checked here: speed is measured by bench/, never asserted in tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.e2e


def test_the_server_benchmark_runs():
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_server.py"), "--smoke"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for row in ("| FastAPI bare |", "| FastAPI + fender |", "| Flask bare |", "| Flask + fender |"):
        assert row in done.stdout
