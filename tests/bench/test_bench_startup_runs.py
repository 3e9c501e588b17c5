"""The cold-start benchmark still runs (``--smoke``: each row once, nothing written).

Numbers are not checked here: speed is measured by bench/, never asserted in tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_startup_benchmark_runs():
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_startup.py"), "--smoke"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fender probe URL" in done.stdout
    assert "python -c 'import fender'" in done.stdout
