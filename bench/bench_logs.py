"""What log redaction and the log file add per event: fender's logging, paired with itself.

Run with ``.venv/bin/python bench/bench_logs.py`` (``--help`` for options); prints a Markdown
table (``bench/run.py`` keeps it as the ``logs`` section of ``bench/RESULTS.md``).

Each row logs one kind of event through the pipeline production runs (``configure_logging``,
JSON lines, one ``write`` each to ``/dev/null``), in batches, each batch right next to a batch
of its baseline (the order flips every round), over many rounds: "µs/event" is the median
batch time per event, "added µs" the median of the per-round differences with the baseline
(FENDER_LOG_REDACT=false, or no log file), so machine noise touches both sides alike.

* access line: the fast path every request takes (``AccessLog.request``), with a Firefox user
  agent (its ``rv:`` holds a ``:``); "new user agent each time" defeats the redactor's map
  of texts seen last, as a client varying its user agent would;
* app event: a structlog event with five fields; stdlib record: a third-party logger's
  ``%``-formatted warning; exception: a logged traceback;
* log file: the access line also appended to FENDER_LOG_FILE (a file in a temporary
  directory, rotated at 10 MiB), against stdout alone.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import machine_header, markdown_table

PACKAGES = ("structlog", "orjson")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"
ACCESS = ("0" * 32, "GET", "/items/{item_id}", 200, 0.123, 14, "10.1.2.3", FIREFOX)
Setup = Callable[[], Callable[[], object]]  # configures logging, returns the call to time


def configured(**env: str) -> None:
    from fender.observability._logging import configure_logging
    from fender.settings import load_settings

    out = Path(os.devnull).open("w", encoding="utf-8")  # noqa: SIM115  (kept for the run)
    configure_logging(
        load_settings({"FENDER_ENV": "production", **env}, env_file=None), fmt="json", stream=out
    )


def access(**env: str) -> Setup:
    def setup() -> Callable[[], object]:
        from fender.observability._logging import access_log

        configured(**env)
        log = access_log()
        return lambda: log.request(*ACCESS)

    return setup


def access_new_agent(**env: str) -> Setup:
    def setup() -> Callable[[], object]:
        from fender.observability._logging import access_log

        configured(**env)
        log = access_log()
        counter = itertools.count()
        agents = [f"{FIREFOX} build/{i}" for i in range(1024)]  # more than the map keeps
        return lambda: log.request(*ACCESS[:-1], agents[next(counter) % 1024])

    return setup


def app_event(**env: str) -> Setup:
    def setup() -> Callable[[], object]:
        from fender.observability._logging import get_logger

        configured(**env)
        log = get_logger("app.orders")
        return lambda: log.info(
            "order placed", order_id=42, user="bob", amount=12.5, items=["a", "b"], note="paid"
        )

    return setup


def stdlib_record(**env: str) -> Setup:
    def setup() -> Callable[[], object]:
        configured(**env)
        log = logging.getLogger("thirdparty.client")
        return lambda: log.warning("retrying %s after %d s", "GET /x", 3)

    return setup


def exception(**env: str) -> Setup:
    def setup() -> Callable[[], object]:
        from fender.observability._logging import get_logger

        configured(**env)
        log = get_logger("app")

        def fail() -> None:
            raise ValueError("order 42 failed: total=12.50")

        def call() -> None:
            try:
                fail()
            except ValueError:
                log.exception("failed")

        return call

    return setup


ROWS: list[tuple[str, Setup, Setup]] = [
    ("access line: redaction on (default)", access(), access(FENDER_LOG_REDACT="false")),
    (
        "access line: + e-mails and IP anonymised",
        access(FENDER_LOG_REDACT_EMAILS="true", FENDER_LOG_ANONYMIZE_IP="true"),
        access(FENDER_LOG_REDACT="false"),
    ),
    (
        "access line: new user agent each time",
        access_new_agent(),
        access_new_agent(FENDER_LOG_REDACT="false"),
    ),
    ("app event (5 fields): redaction on", app_event(), app_event(FENDER_LOG_REDACT="false")),
    ("stdlib record: redaction on", stdlib_record(), stdlib_record(FENDER_LOG_REDACT="false")),
    ("exception with traceback: redaction on", exception(), exception(FENDER_LOG_REDACT="false")),
]


def timed(call: Callable[[], object], batch: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(batch):
        call()
    return (time.perf_counter_ns() - start) / batch


def paired(variant: Setup, baseline: Setup, rounds: int, batch: int) -> tuple[float, float, float]:
    """(µs/event of the variant, of the baseline, median added µs)."""
    ours, theirs, added = [], [], []
    for round_ in range(rounds):
        pair = [(variant, ours), (baseline, theirs)]
        if round_ % 2:
            pair.reverse()
        for setup, samples in pair:
            call = setup()  # (configuring is outside the timed batch)
            call()
            samples.append(timed(call, batch))
        added.append(ours[-1] - theirs[-1])
    return (
        statistics.median(ours) / 1000,
        statistics.median(theirs) / 1000,
        statistics.median(added) / 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=40, help="paired rounds (default 40)")
    parser.add_argument("--batch", type=int, default=2000, help="events per batch (default 2000)")
    parser.add_argument("--smoke", action="store_true", help="a few events per row (tests)")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.batch = 2, 2
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    rows: list[list[Any]] = []
    for name, variant, baseline in ROWS:
        ours, theirs, added = paired(variant, baseline, args.rounds, args.batch)
        rows.append([name, f"{ours:.2f}", f"{theirs:.2f}", f"{added:+.2f}"])
    with tempfile.TemporaryDirectory(prefix="fender-bench-logs-") as directory:
        path = os.path.join(directory, "app.log")  # noqa: PTH118  (a str for the environment)
        ours, theirs, added = paired(
            access(FENDER_LOG_FILE=path), access(), args.rounds, args.batch
        )
        rows.append(
            ["access line: + FENDER_LOG_FILE", f"{ours:.2f}", f"{theirs:.2f}", f"{added:+.2f}"]
        )
        configured()  # the file closed before its directory goes
    intro = (
        f"`bench/bench_logs.py --rounds {args.rounds} --batch {args.batch}`: one event at a time "
        "through `configure_logging`'s JSON pipeline to /dev/null; each row paired with its "
        "baseline (redaction off; for the file row, stdout alone). µs/event: medians per batch; "
        "added µs: median of the per-round differences."
    )
    table = markdown_table(["event", "µs/event", "baseline µs", "added µs"], rows)
    print(
        "\n\n".join(["## Log redaction and the log file", machine_header(PACKAGES), intro, table])
    )


if __name__ == "__main__":
    main()
