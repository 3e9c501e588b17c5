"""The log benchmark still runs against the current API (``--smoke``).

Numbers are not checked here: speed is measured by bench/, never asserted in tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_logs_benchmark_runs():
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_logs.py"), "--smoke"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "access line: redaction on (default)" in done.stdout
    assert "access line: + FENDER_LOG_FILE" in done.stdout
