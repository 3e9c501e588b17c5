"""The machinery of the in-process paired benches: a prebuilt request, timed batches, pairs.

The apps are driven in-process and directly: an ASGI app is awaited with a prebuilt scope and
no-op ``receive``/``send`` coroutines, a WSGI app is called with a prebuilt environ and a no-op
``start_response`` and its iterable consumed and closed. No HTTP client, no transport, no
server: what is measured is the framework plus the middleware, so fender's cost is not hidden.

Paired rounds: every variant is timed in batches, each batch right next to a batch of its
baseline (the order flips every round), over many rounds. "µs/req" is the median batch time
per request; "ratio" and "added" are the medians of the per-round paired ratios and
differences, so machine noise touches both sides of each pair alike.

A variant marked ``started`` is started as a server starts it before it is timed (the ASGI
lifespan, on the loop that then serves it), so that what a worker's start turns on (the
monitor, the limiter's heartbeat, a Redis client) runs as in production. A WSGI app starts on
its first request, which the warm-up sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from _results import markdown_table
from server_apps import fastapi_app, flask_app

__all__ = [
    "FENDER",
    "LOG",
    "PATH",
    "SECRET",
    "Variant",
    "arguments",
    "fastapi_app",
    "flask_app",
    "measure",
    "paired_run",
    "raw_asgi",
    "raw_wsgi",
    "rows",
]

SECRET = secrets.token_urlsafe(48)
BODY = b'{"item_id":42}'
PATH = "/items/42"
HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")]
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "path": PATH,
    "raw_path": PATH.encode(),
    "query_string": b"",
    "headers": HEADERS,
}
ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": PATH,
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "bench/1.0",
    "HTTP_ACCEPT": "*/*",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(b""),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}
# fender as a default install runs it, in production: everything on by default stays on (the
# rate limiter in memory, security headers, the monitor, the JSON access log) but the limit,
# set where no request of the bench reaches it (a rejection would be cheaper, and wrong).
FENDER: dict[str, Any] = {
    "env": "production",
    "secret_key": SECRET,
    "log_format": "json",
    "rate_limit": "1000000/second",
}

# --- drivers --------------------------------------------------------------------------------


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_message: dict[str, Any]) -> None:
    return None


def _start_response(_status: str, _headers: list[Any], _exc_info: Any = None) -> Any:
    return None


@dataclasses.dataclass
class Variant:
    """One app to time, paired with its ``baseline`` (None: it is a bare app itself)."""

    group: str
    name: str
    app: Any
    asgi: bool
    baseline: Variant | None = None
    started: bool = False  # started as a server starts it (the lifespan) before it is timed
    samples: list[float] = dataclasses.field(default_factory=list)  # ns per request
    ratios: list[float] = dataclasses.field(default_factory=list)
    added: list[float] = dataclasses.field(default_factory=list)  # ns per request


class Timer:
    """Times batches of requests on one event loop (ASGI) or straight (WSGI)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.loop = asyncio.new_event_loop()

    async def _asgi(self, app: Any) -> int:
        receive, send, scope = _receive, _send, SCOPE
        start = time.perf_counter_ns()
        for _ in range(self.batch):
            # A fresh scope each time: frameworks write the route, app and state into it.
            await app({**scope, "headers": list(HEADERS)}, receive, send)
        return time.perf_counter_ns() - start

    def _wsgi(self, app: Any) -> int:
        environ, start_response = ENVIRON, _start_response
        start = time.perf_counter_ns()
        for _ in range(self.batch):
            body = app(environ.copy(), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return time.perf_counter_ns() - start

    def run(self, variant: Variant) -> float:
        """Nanoseconds per request over one batch."""
        if variant.asgi:
            elapsed = self.loop.run_until_complete(self._asgi(variant.app))
        else:
            elapsed = self._wsgi(variant.app)
        return elapsed / self.batch


class Lifespan:
    """An ASGI app's lifespan, driven as a server drives it, on the loop that times the app."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self.task = loop.create_task(app(scope, self._to_app.get, self._from_app.put))

    async def _step(self, what: str) -> None:
        await self._to_app.put({"type": f"lifespan.{what}"})
        answer = await self._from_app.get()
        if answer["type"] != f"lifespan.{what}.complete":
            raise RuntimeError(f"lifespan {what}: {answer}")

    up = False

    def startup(self) -> None:
        self.loop.run_until_complete(self._step("startup"))
        self.up = True

    def shutdown(self) -> None:
        """Shut down what started; cancel what did not (a failed start)."""
        if self.up:
            self.loop.run_until_complete(self._step("shutdown"))
        else:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)


def measure(variants: list[Variant], rounds: int, batch: int, warmup: int = 3) -> None:
    """Fill each variant's samples, paired ratios and differences."""
    timer = Timer(batch)
    lifespans = [Lifespan(v.app, timer.loop) for v in variants if v.started and v.asgi]
    for lifespan in lifespans:
        lifespan.startup()
    try:
        for variant in variants:
            for _ in range(warmup):
                timer.run(variant)
        _rounds(timer, [v for v in variants if v.baseline is not None], rounds)
    finally:
        for lifespan in reversed(lifespans):
            lifespan.shutdown()
        timer.loop.close()


def _rounds(timer: Timer, paired: list[Variant], rounds: int) -> None:
    for round_no in range(rounds):
        # Rotate the order so no variant always runs right after the same neighbour.
        shift = round_no % len(paired)
        for variant in paired[shift:] + paired[:shift]:
            base = variant.baseline
            if base is None:
                continue
            if round_no % 2:
                t_variant, t_base = timer.run(variant), timer.run(base)
            else:
                t_base, t_variant = timer.run(base), timer.run(variant)
            base.samples.append(t_base)
            variant.samples.append(t_variant)
            variant.ratios.append(t_variant / t_base)
            variant.added.append(t_variant - t_base)


# --- apps -----------------------------------------------------------------------------------


async def raw_asgi(_scope: Any, _receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"14")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def raw_wsgi(_environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "14")])
    return [BODY]


# --- report ---------------------------------------------------------------------------------


def rows(variants: Iterable[Variant]) -> list[list[str]]:
    out = []
    for v in variants:
        us = statistics.median(v.samples) / 1000
        if v.baseline is None:
            out.append([v.group, v.name, f"{us:.1f}", "1.00x", "0.0"])
        else:
            ratio = statistics.median(v.ratios)
            added = statistics.median(v.added) / 1000
            out.append([v.group, v.name, f"{us:.1f}", f"{ratio:.2f}x", f"{added:+.1f}"])
    return out


def arguments(parser: argparse.ArgumentParser, rounds: int = 80) -> argparse.ArgumentParser:
    """``parser`` with the options of every paired bench: --rounds --batch --no-write --smoke."""
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"paired rounds (default {rounds})"
    )
    parser.add_argument("--batch", type=int, default=100, help="requests per batch (default 100)")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument(
        "--smoke", action="store_true", help="one request per variant, nothing written (tests)"
    )
    return parser


# The open log of the run (JSON lines to /dev/null), for variants that log apart from fender.
LOG: list[Any] = []


def paired_run(
    description: str,
    make: Callable[[], list[Variant]],
    parser: argparse.ArgumentParser | None = None,
) -> tuple[argparse.Namespace, str, Callable[[], None]]:
    """The command line and run of an in-process paired bench: (args, its table, done).

    Options --rounds, --batch, --no-write, --smoke (and those ``parser`` already has); logs go
    to /dev/null as JSON lines (:data:`LOG`); ``make`` builds the variants once fender's
    logging is configured. ``done`` closes the log.
    """
    parser = parser or arguments(argparse.ArgumentParser(description=description))
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.batch, args.no_write = 2, 1, True
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    import fender

    log = Path(os.devnull).open("w", encoding="utf-8")  # noqa: SIM115  (open for the run)
    LOG.append(log)
    fender.configure_logging(fender.load_settings({}, env_file=None, **FENDER), stream=log)
    measured = make()
    measure(measured, args.rounds, args.batch)
    table = markdown_table(["group", "app", "µs/req", "ratio", "added µs"], rows(measured))
    return args, table, log.close
