"""The request-path benchmark still runs against the current API (``--smoke``: one request per
variant, every step once, nothing written).

Numbers are not checked here: speed is measured by bench/, never asserted in tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_request_path_benchmark_runs():
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    for mode in ([], ["--multiprocess"]):
        done = subprocess.run(
            [sys.executable, str(BENCH / "bench_request_path.py"), "--smoke", *mode],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "FastAPI + fender.install" in done.stdout
        assert "Flask + Fender(app)" in done.stdout
