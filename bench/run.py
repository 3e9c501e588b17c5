"""Run every benchmark and keep its table in bench/RESULTS.md (``make bench``).

A benchmark that stores its own section (``_results.publish``) is run as it is; when one leaves
RESULTS.md as it was, what it printed is stored here under a section named after the script. A
benchmark that fails does not stop the others; the run then exits non-zero, naming it. Each
script's time and the total are printed at the end (the whole is meant to take under 15
minutes on a 2-core machine).

Run: .venv/bin/python bench/run.py [NAME ...]   (NAME: e.g. breaker, ratelimit)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _results import RESULTS, write_section

HERE = Path(__file__).resolve().parent
# Scripts run more than once, with these arguments (each run writes its own section).
RUNS = {"bench_request_path.py": [[], ["--multiprocess", "--no-redis", "--rounds", "60"]]}


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    times: list[tuple[str, float]] = []
    failed: list[str] = []
    runs = [(script, extra) for script in scripts for extra in RUNS.get(script.name, [[]])]
    for script, extra in runs:
        label = " ".join([script.name, *extra])
        print(f"== {label}", flush=True)
        before = RESULTS.read_text(encoding="utf-8")
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(script), *extra], capture_output=True, text=True, check=False
        )
        times.append((label, time.monotonic() - started))
        print(result.stdout)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            failed.append(label)
            continue
        if RESULTS.read_text(encoding="utf-8") == before:  # it printed its table only
            write_section(script.stem.removeprefix("bench_"), result.stdout)
    for name, seconds in times:
        print(f"{name:72} {seconds:6.0f} s")
    print(f"{'total':72} {sum(s for _, s in times):6.0f} s")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
