"""What a cold process pays for fender: ``import fender`` and ``fender probe``.

``fender probe URL`` runs every few seconds as a container HEALTHCHECK, so its cost is paid
all day. Each row is a fresh process, run ``--runs`` times; wall time and peak RSS (the
child's ``ru_maxrss``) are medians. Peers in the same run: the bare interpreter, httpx's import,
and ``curl`` probing the same URL (a local HTTP server in this process, answering
``/health/ready`` with a small JSON body).

Run: .venv/bin/python bench/bench_startup.py [--runs 30] [--smoke] [--no-write]
"""

from __future__ import annotations

import argparse
import http.server
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _results import machine_header, markdown_table, publish

BIN = Path(sys.executable).parent
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
TARGET_MS = 50.0
TARGET_MB = 20.0


class _Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"pass"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/health+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def _run_once(argv: list[str]) -> tuple[float, float]:
    """Wall milliseconds and peak RSS in MB of one fresh process running ``argv``.

    The peak RSS comes from GNU time (``%M``): a child forked from this (large) Python process
    reports the parent's pages as its own peak in ``ru_maxrss``, which a small ``time``
    process in between does not. Without ``/usr/bin/time``, RSS is not reported (nan).
    """
    timed = [TIME, "-f", "%M", *argv] if TIME else argv
    start = time.perf_counter()
    done = subprocess.run(timed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    err = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {err[-2000:]}")
    peak = float(err.strip().splitlines()[-1]) / 1024 if TIME else math.nan
    return elapsed, peak


def _measure(argv: list[str], runs: int) -> tuple[float, float]:
    samples = [_run_once(argv) for _ in range(runs)]
    return (
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
    )


def _modules(code: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", (f"{code}; import sys; print(len([m for m in sys.modules "
                                "if m == 'fender' or m.startswith('fender.')]))")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="each row once; nothing written")
    parser.add_argument("--no-write", action="store_true", help="print; keep RESULTS.md")
    args = parser.parse_args()
    runs = 1 if args.smoke else args.runs

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health/ready"
    python = sys.executable
    rows_in: list[tuple[str, list[str], str | None]] = [
        ("python -c pass (the interpreter alone)", [python, "-c", "pass"], None),
        ("python -c 'import httpx'", [python, "-c", "import httpx"], None),
        ("python -c 'import fender'", [python, "-c", "import fender"], "import fender"),
        (
            "python -c 'import fender.asgi' (everything an app loads)",
            [python, "-c", "import fender.asgi, fender.wsgi, fender.flask"],
            "import fender.asgi, fender.wsgi, fender.flask",
        ),
        ("fender probe URL", [str(BIN / "fender"), "probe", url], None),
    ]
    curl = shutil.which("curl")
    if curl:
        rows_in.append(("curl -fsS URL", [curl, "-fsS", url], None))
    try:
        rows = []
        for label, argv, code in rows_in:
            wall, rss = _measure(argv, runs)
            loaded = _modules(code) if code else ""
            rows.append((label, f"{wall:.1f}", f"{rss:.1f}", loaded))
    finally:
        server.shutdown()
    table = markdown_table(("process", "wall ms (median)", "peak RSS MB", "fender modules"), rows)
    publish(
        "startup",
        [
            "## Cold start: `import fender` and `fender probe`",
            machine_header(("httpx",)),
            (
                f"`bench/bench_startup.py --runs {runs}`: each row a fresh process; medians. "
                f"Target (issue 10): `fender probe` under {TARGET_MS:.0f} ms and "
                f"{TARGET_MB:.0f} MB."
            ),
            table,
        ],
        write=not (args.smoke or args.no_write),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
