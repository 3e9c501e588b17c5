"""What the in-process monitor adds per request, and what its /status summary costs.

Run with ``.venv/bin/python bench/bench_monitor.py`` (``--help`` for options); prints the
tables and writes the ``monitor`` section of ``bench/RESULTS.md``.

Driven in process as ``bench_request_path.py`` drives apps (a prebuilt scope or environ, no
server, no client), with its paired rounds: fender with FENDER_MONITOR on is timed next to
fender with it off, so "added µs" (the median of the per-round differences) is the monitor's
cost inside fender's one middleware: one request into the worker's rings (target: < 2 µs).
The monitors are opened as a worker's start opens them (the bench runs no lifespan). Then
single steps: a record into memory and into a shared file, and the merges the evaluating
worker makes once a second and /status makes when asked, over 1 and 4 workers' full rings.
"""

from __future__ import annotations

import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _paired import (
    FENDER,
    PATH,
    Variant,
    fastapi_app,
    flask_app,
    paired_run,
)
from _results import machine_header, markdown_table, publish

PACKAGES = ("fastapi", "starlette", "flask")


def variants() -> list[Variant]:
    import fender
    from fender.flask import Fender

    off = {**FENDER, "monitor_enabled": False}

    def installed(**options: Any) -> Any:
        app = fastapi_app()
        fender.install(app, **options)
        if app.state.fender.monitor is not None:
            app.state.fender.monitor.open()
        return app

    def flask_with(**options: Any) -> Any:
        app = flask_app()
        Fender(app, **options)
        if app.extensions["fender"].monitor is not None:
            app.extensions["fender"].monitor.open()
        return app

    fa_off = Variant("FastAPI", "fender.install, monitor off", installed(**off), True)
    fl_off = Variant("Flask", "Fender(app), monitor off", flask_with(**off), False)
    return [
        fa_off,
        Variant("FastAPI", "fender.install, monitor on", installed(**FENDER), True, fa_off),
        fl_off,
        Variant("Flask", "Fender(app), monitor on", flask_with(**FENDER), False, fl_off),
    ]


def full_rings(directory: Path, workers: int, now: float) -> None:
    """``workers`` files of rings with a request in every second of 15 minutes, 20 routes."""
    from fender.monitor._rings import Rings

    for n in range(workers):
        rings = Rings.create(directory / f"rings_{n + 1}.bin", int(now) - 900)
        for second in range(900):
            for route in range(20):
                rings.record(f"/route/{route}", 200, 0.001 * (route + 1), now - 899 + second)
        rings.close()


def steps(work: Path) -> list[tuple[str, Callable[[], object]]]:
    import time

    from fender.monitor import Monitor
    from fender.monitor._rings import Rings
    from fender.settings import load_settings

    now = time.time()
    memory = Rings.create(None, int(now))
    shared = Rings.create(work / "rings_0.bin", int(now))
    settings = load_settings({}, env_file=None)
    monitors = {}
    for workers in (1, 4):
        directory = work / f"w{workers}"
        directory.mkdir()
        full_rings(directory, workers, now)
        monitors[workers] = Monitor(
            settings,
            directory=lambda d=directory: d,  # type: ignore[misc]
            share_bytes=None,
            open_breakers=list,
            streaks=dict,
            clock=lambda: now,
        )
        monitors[workers].open()

    return [
        ("Rings.record, in memory", lambda: memory.record("/items/{id}", 200, 0.0123, now)),
        ("Rings.record, shared file", lambda: shared.record("/items/{id}", 200, 0.0123, now)),
        ("tick of the evaluating worker, 1 worker", monitors[1].tick),
        ("tick of the evaluating worker, 4 workers", monitors[4].tick),
        ("/status summary, 1 worker", monitors[1].summary),
        ("/status summary, 4 workers", monitors[4].summary),
    ]


def main() -> None:
    args, table, done = paired_run(__doc__.split("\n", 1)[0], variants)
    with tempfile.TemporaryDirectory() as work:
        step_rows = []
        for name, fn in steps(Path(work)):
            number = 2 if args.smoke else (20_000 if name.startswith("Rings") else 20)
            best = min(timeit.repeat(fn, number=number, repeat=2 if args.smoke else 7))
            step_rows.append([name, f"{best / number * 1e6:.2f}"])
    step_table = markdown_table(["step (one call)", "µs"], step_rows)
    intro = (
        f"`bench/bench_monitor.py --rounds {args.rounds} --batch {args.batch}`: GET {PATH} "
        "driven in process (no server, no client). fender with FENDER_MONITOR on, paired with "
        'fender with it off: "added µs" is what the monitor costs a request (target: < 2 µs).'
    )
    publish(
        "monitor",
        [
            "## Monitor: added µs per request, and its merges",
            machine_header(PACKAGES),
            intro,
            table,
            (
                "One call of each step (best of 7 runs; the merges read 15 minutes of a "
                "request a second on 20 routes per worker):"
            ),
            step_table,
        ],
        write=not args.no_write,
    )
    done()


if __name__ == "__main__":
    main()
