"""Per-request overhead of fender's request path over bare FastAPI, Flask and raw ASGI/WSGI.

Run with ``.venv/bin/python bench/bench_request_path.py`` (``--help`` for options); prints the
tables and writes the ``request_path`` section of ``bench/RESULTS.md``.

The apps are driven in-process and directly: an ASGI app is awaited with a prebuilt scope and
no-op ``receive``/``send`` coroutines, a WSGI app is called with a prebuilt environ and a no-op
``start_response`` and its iterable consumed and closed. No HTTP client, no transport, no
server: what is measured is the framework plus the middleware, so fender's cost is not hidden.

Paired rounds: every variant is timed in batches, each batch right next to a batch of its
group's bare app (the order flips every round), over many rounds. "µs/req" is the median batch
time per request; "ratio" and "added" are the medians of the per-round paired ratios and
differences, so machine noise touches both sides of each pair alike.

fender runs as in production: ``env="production"``, JSON logs written with one ``write`` per
line to a real file descriptor (``/dev/null`` by default, ``--log-file`` for a real file),
Prometheus metrics in single-process mode (``--multiprocess`` for gunicorn's mmap files).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from _results import machine_header, markdown_table, publish

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
PEERS = ("prometheus-fastapi-instrumentator", "asgi-correlation-id", "python-json-logger")
FRAMEWORKS = ("fastapi", "starlette", "flask", "werkzeug")
PACKAGES = (*FRAMEWORKS, "prometheus-client", "orjson", "structlog", *PEERS)


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


def measure(variants: list[Variant], rounds: int, batch: int, warmup: int = 3) -> None:
    """Fill each variant's samples, paired ratios and differences."""
    timer = Timer(batch)
    for variant in variants:
        for _ in range(warmup):
            timer.run(variant)
    paired = [v for v in variants if v.baseline is not None]
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
    timer.loop.close()


# --- apps -----------------------------------------------------------------------------------


def fastapi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


def flask_app() -> Any:
    from flask import Flask

    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"item_id": item_id}

    return app


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


class PassThrough:
    """The cheapest pure ASGI middleware: what one layer costs in Starlette's stack."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class SendWrapper(PassThrough):
    """The floor of any middleware that sees the response: ``send`` wrapped once."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        status = [0]

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        await self.app(scope, receive, send_status)


# The comparison: request id + logging + metrics. The rate limiter (on by default)
# gets its own rows, with a limit no request reaches (a rejection would be cheaper, and wrong).
FENDER = {
    "env": "production",
    "secret_key": SECRET,
    "log_format": "json",
    "rate_limit_enabled": False,
}
LIMITED = {**FENDER, "rate_limit_enabled": True, "rate_limit": "1000000/second"}


def fender_variants() -> list[Variant]:
    import fender
    from fender.flask import Fender

    def installed(**options: Any) -> Any:
        app = fastapi_app()
        fender.install(app, **{**FENDER, **options})
        return app

    def layered(*layers: tuple[type, dict[str, Any]]) -> Any:
        app = fastapi_app()
        for cls, kwargs in layers:
            app.add_middleware(cls, **kwargs)
        return app

    def flask_keyed() -> Any:
        # An app with a secret_key pays for Flask's cookie sessions, with or without fender
        # (fender does not set one).
        app = flask_app()
        app.secret_key = SECRET
        return app

    def flask_with(app: Any, **options: Any) -> Any:
        Fender(app, **FENDER, **options)
        return app

    def flask_limited(app: Any) -> Any:
        Fender(app, **LIMITED)
        return app

    empty: dict[str, Any] = {}

    raw = Variant("raw ASGI", "raw ASGI app", raw_asgi, asgi=True)
    fa = Variant("FastAPI", "FastAPI bare", fastapi_app(), asgi=True)
    raw_w = Variant("raw WSGI", "raw WSGI app", raw_wsgi, asgi=False)
    fl = Variant("Flask", "Flask bare", flask_app(), asgi=False)
    fl_key = Variant("Flask", "↳ bare + app.secret_key (no fender)", flask_keyed(), False, fl)

    def on(base: Variant, name: str, app: Any) -> Variant:
        return Variant(base.group, name, app, base.asgi, base)

    return [
        raw,
        on(raw, "raw ASGI + fender.asgi.wrap", fender.asgi.wrap(raw_asgi, **FENDER)),
        fa,
        on(fa, "FastAPI + fender.install", installed()),
        on(fa, "↳ fender, access log off", installed(access_log=False)),
        on(fa, "FastAPI + fender.install, rate limits on (memory)", installed(**LIMITED)),
        on(fa, "↳ 1 empty pure-ASGI middleware", layered((PassThrough, empty))),
        on(fa, "↳ 1 pure-ASGI middleware wrapping send", layered((SendWrapper, empty))),
        on(fa, "↳ 3 empty pure-ASGI middleware", layered(*[(PassThrough, empty)] * 3)),
        *peer_variants(fa),
        raw_w,
        on(raw_w, "raw WSGI + fender.wsgi.wrap", fender.wsgi.wrap(raw_wsgi, **FENDER)),
        fl,
        on(fl, "Flask + Fender(app)", flask_with(flask_app())),
        on(fl, "↳ Fender, access log off", flask_with(flask_app(), access_log=False)),
        on(fl, "Flask + Fender(app), rate limits on (memory)", flask_limited(flask_app())),
        fl_key,
        on(fl_key, "Flask with secret_key + Fender(app)", flask_with(flask_keyed())),
    ]


# --- the peer stack -------------------------------------------------------------------------


class PeerAccessLog:
    """A JSON access line through python-json-logger, as a peer-stack user would write it."""

    def __init__(self, app: Any, logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client")
            self.logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status[0],
                    "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                    "client": client[0] if client else None,
                },
            )


def peer_logger(stream: Any) -> logging.Logger | None:
    try:
        from asgi_correlation_id import CorrelationIdFilter
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:
        return None
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter("{asctime}{levelname}{name}{message}{correlation_id}", style="{")
    )
    handler.addFilter(CorrelationIdFilter())
    logger = logging.getLogger("bench.peer.access")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False  # not through fender's handler on the root logger
    return logger


PEER_STREAM: list[Any] = []


def peer_variants(bare: Variant) -> list[Variant]:
    try:
        from asgi_correlation_id import CorrelationIdMiddleware
        from prometheus_client import CollectorRegistry
        from prometheus_fastapi_instrumentator import Instrumentator
    except ImportError:
        return []
    logger = peer_logger(PEER_STREAM[0])
    if logger is None:
        return []

    def instrumented(app: Any) -> Any:
        # Own registries: two instrumented apps must not declare the same metrics twice.
        Instrumentator(registry=CollectorRegistry()).instrument(app)
        return app

    def layered(*layers: tuple[type, dict[str, Any]]) -> Any:
        app = fastapi_app()
        for cls, kwargs in layers:
            app.add_middleware(cls, **kwargs)
        return app

    access = (PeerAccessLog, {"logger": logger})
    correlation: tuple[type, dict[str, Any]] = (CorrelationIdMiddleware, {})
    rows = [
        ("peer stack: instrumentator + correlation-id + json-logger",
         instrumented(layered(access, correlation))),
        ("↳ prometheus-fastapi-instrumentator", instrumented(fastapi_app())),
        ("↳ asgi-correlation-id", layered(correlation)),
        ("↳ python-json-logger access line", layered(access)),
    ]  # fmt: skip
    return [Variant(bare.group, name, app, bare.asgi, bare) for name, app in rows]


# --- where fender's time goes: its per-request steps, one at a time -------------------------


def steps() -> list[tuple[str, Callable[[], object]]]:
    import orjson

    from fender.app import ASGI, build_runtime
    from fender.http.access import Observer
    from fender.http.requestid import accept_request_id, request_context
    from fender.observability import _logging as flog
    from fender.observability import _metrics as metrics

    observer: Observer = build_runtime(flavour=ASGI, **FENDER).observer
    quiet: Observer = build_runtime(flavour=ASGI, **FENDER, access_log=False).observer
    histogram = observer._duration.child("/items/{item_id}", "GET", "200")  # noqa: SLF001
    plain = metrics.histogram("bench_plain_duration_seconds", "Unbuffered.", ("route",)).labels("/")
    active = observer.active("GET")
    access = flog.access_log()
    event = {
        "timestamp": "2026-01-01T00:00:00.000Z", "level": "info", "logger": "fender.access",
        "event": "request", "request_id": "0" * 32, "method": "GET",
        "route": "/items/{item_id}", "status": 200, "duration_ms": 0.123, "bytes": 14,
        "client": "127.0.0.1", "user_agent": "bench/1.0",
    }  # fmt: skip
    line = orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)
    fd = PEER_STREAM[0].fileno()
    iso = flog._IsoTime()  # noqa: SLF001

    def bind_reset() -> None:
        flog.reset_request(flog.bind_request(flog.RequestContext("x" * 32)))

    def gauge() -> None:
        active.inc()
        active.dec()

    def finish(obs: Observer) -> Callable[[], None]:
        return lambda: obs.finish(
            "0" * 32, "GET", "/items/{item_id}", 200, 0.0001, 14, "127.0.0.1", "bench/1.0"
        )

    fields = {k: v for k, v in event.items() if k not in ("timestamp", "level", "logger", "event")}
    child = observer._duration.child  # noqa: SLF001
    return [
        ("request id: accept_request_id(None), os.urandom(16).hex()",
         lambda: accept_request_id(None)),
        ("request id: request_context + bind + reset",
         lambda: (request_context("x" * 32, None), bind_reset())),
        ("metrics: histogram child .observe() (buffered)", lambda: histogram.observe(0.0001)),
        ("metrics: in-flight gauge .inc() + .dec() (buffered)", gauge),
        ("reference: prometheus_client histogram child .observe()", lambda: plain.observe(0.0001)),
        ("metrics: LabelGuard.child() lookup", lambda: child("/items/{item_id}", "GET", "200")),
        ("access log: _IsoTime() timestamp", iso),
        ("access log: orjson.dumps(event)",
         lambda: orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE)),
        ("access log: os.write(fd, line)", lambda: os.write(fd, line)),
        ("access log: AccessLog.request (timestamp, dump, write)",
         lambda: access.request(*fields.values())),
        ("Observer.finish, access log on", finish(observer)),
        ("Observer.finish, access log off", finish(quiet)),
        ("reference: uuid.uuid4().hex", _uuid4_hex),
        ("reference: time.perf_counter()", time.perf_counter),
    ]  # fmt: skip


def _uuid4_hex() -> str:
    import uuid

    return uuid.uuid4().hex


def time_steps(number: int = 20_000, repeat: int = 15) -> list[tuple[str, float]]:
    return [
        (name, min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6)
        for name, fn in steps()
    ]


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


def paired_run(
    description: str, make: Callable[[], list[Variant]]
) -> tuple[argparse.Namespace, str, Callable[[], None]]:
    """The command line and run of an in-process paired bench: (args, its table, done).

    Options --rounds, --batch, --no-write, --smoke; logs go to /dev/null as JSON lines;
    ``make`` builds the variants once fender's logging is configured. ``done`` closes the log.
    """
    args = arguments(argparse.ArgumentParser(description=description)).parse_args()
    if args.smoke:
        args.rounds, args.batch, args.no_write = 2, 1, True
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    import fender

    log = Path(os.devnull).open("w", encoding="utf-8")  # noqa: SIM115  (open for the run)
    PEER_STREAM.append(log)
    fender.configure_logging(fender.load_settings({}, env_file=None, **FENDER), stream=log)
    measured = make()
    measure(measured, args.rounds, args.batch)
    table = markdown_table(["group", "app", "µs/req", "ratio", "added µs"], rows(measured))
    return args, table, log.close


def main() -> None:
    parser = arguments(argparse.ArgumentParser(description=__doc__.split("\n", 1)[0]), rounds=120)
    parser.add_argument("--log-file", default=os.devnull, help="where log lines go")
    parser.add_argument(
        "--multiprocess", action="store_true", help="prometheus_client multiprocess (mmap) mode"
    )
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.batch, args.no_write = 2, 1, True

    metrics_dir = None
    if args.multiprocess:
        # Before fender or prometheus_client is imported: the mode is chosen at first use.
        metrics_dir = tempfile.mkdtemp(prefix="fender-bench-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    else:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    import fender

    log = Path(args.log_file).open("w", encoding="utf-8")  # noqa: SIM115  (open for the run)
    PEER_STREAM.append(log)
    settings = fender.load_settings({}, env_file=None, **FENDER)
    fender.configure_logging(settings, fmt="json", stream=log)

    variants = fender_variants()
    measure(variants, args.rounds, args.batch)
    table = markdown_table(["group", "app", "µs/req", "ratio", "added µs"], rows(variants))
    timings = time_steps(number=2, repeat=1) if args.smoke else time_steps()
    steps_rows = [[name, f"{us:.2f}"] for name, us in timings]
    step_table = markdown_table(["step (one call)", "µs"], steps_rows)
    mode = "multiprocess (mmap)" if args.multiprocess else "single-process"
    target = "/dev/null" if args.log_file == os.devnull else "a file"
    intro = (
        f"`bench/bench_request_path.py --rounds {args.rounds} --batch {args.batch}"
        f"{' --multiprocess' if args.multiprocess else ''}`: GET {PATH} (a path parameter, "
        "a small JSON body) driven in-process straight into the app, no server or client. "
        f"Logs: JSON lines, one write each, to {target}. µs/req: median per batch; ratio and "
        "added µs: medians of the per-round paired comparisons with the bare app above "
        "(target: fender <= 1.10x bare). ↳ rows break the row above down."
    )
    steps_title = "Where the time goes, one step at a time (best of 15 x 20,000 calls):"
    parts = [f"## Request path overhead ({mode} metrics)", machine_header(PACKAGES), intro]
    name = "request_path_multiprocess" if args.multiprocess else "request_path"
    publish(name, [*parts, table, steps_title, step_table], write=not args.no_write)
    log.close()
    if metrics_dir is not None:
        with contextlib.suppress(OSError):
            for path in Path(metrics_dir).iterdir():
                path.unlink()
            Path(metrics_dir).rmdir()


if __name__ == "__main__":
    main()
