"""Run every benchmark and keep its table in bench/RESULTS.md (``make bench``).

A benchmark that stores its own section (``_results.publish``) is run as it is; when one leaves
RESULTS.md as it was, what it printed is stored here under a section named after the script.

Run: .venv/bin/python bench/run.py [NAME ...]   (NAME: e.g. breaker, ratelimit)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _results import RESULTS, write_section

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    for script in scripts:
        print(f"== {script.name}", flush=True)
        before = RESULTS.read_text(encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, check=False
        )
        print(result.stdout)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        if RESULTS.read_text(encoding="utf-8") == before:  # it printed its table only
            write_section(script.stem.removeprefix("bench_"), result.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
