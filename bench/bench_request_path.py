"""What a request pays for fender, in process: the default install, Redis, and the peer stacks.

Run with ``.venv/bin/python bench/bench_request_path.py`` (``--help`` for options); prints the
tables and writes the ``request_path`` section of ``bench/RESULTS.md``.

One paired run (see ``_paired.py``: a prebuilt ``GET /items/42``, no server, no client; every
row timed next to the bare framework) of, for FastAPI and for Flask:

* fender as a default install turns it on: the rate limiter in memory (a limit no request
  reaches), security headers, the monitor, the JSON access log; ``↳`` rows: the same with one
  of them off, so the differences say what each costs;
* fender with its limits shared through Redis (``REDIS_URL``; a redis-server the bench starts on
  a free loopback port), one row for each rate-limit mode fender's settings offer;
* the peer stack from the usual packages (``_peers.py``), limits in memory and on Redis.

fender runs as in production: ``env="production"``, started as a server starts it (lifespan;
a WSGI app on its first request), JSON logs written with one ``write`` per line to a real file
descriptor (``/dev/null`` by default, ``--log-file`` for a real file), Prometheus metrics in
single-process mode (``--multiprocess`` for gunicorn's mmap files).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import timeit
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _paired import (
    FENDER,
    LOG,
    PATH,
    SECRET,
    Variant,
    arguments,
    fastapi_app,
    flask_app,
    measure,
    raw_asgi,
    raw_wsgi,
    rows,
)
from _peers import fastapi_peers, flask_peers
from _results import machine_header, markdown_table, publish, target_note
from _servers import redis_server

PEERS = (
    "prometheus-fastapi-instrumentator", "slowapi", "secure", "asgi-correlation-id",
    "python-json-logger", "prometheus-flask-exporter", "flask-limiter", "flask-talisman",
    "limits",
)  # fmt: skip
FRAMEWORKS = ("fastapi", "starlette", "flask", "werkzeug")
PACKAGES = (*FRAMEWORKS, "prometheus-client", "orjson", "structlog", "redis", *PEERS)
# Issue 16's targets, ratios to the bare framework within one run.
DEFAULT_TARGET = 1.15
REDIS_TARGET = 1.5
# What a default install turns on, each turned off in a ↳ row of its own.
ABLATIONS = {
    "rate limiter off": {"rate_limit_enabled": False},
    "access log off": {"access_log": False},
    "monitor off": {"monitor_enabled": False},
    "security headers off": {"security_headers": False},
}


def redis_modes() -> list[tuple[str, dict[str, Any]]]:
    """The shared limiter's modes as fender's settings offer them: ``(label, options)`` pairs.

    A ``rate_limit_*`` field whose values include ``"lease"`` (e.g. FENDER_RATE_LIMIT_MODE=
    lease|exact) gets a row per value; without one, a single row with fender's only mode.
    """
    from fender.settings import Settings

    for name, field in Settings.model_fields.items():
        values = typing.get_args(field.annotation)
        if name.startswith("rate_limit") and "lease" in values:
            return [(f", {name}={value}", {name: value}) for value in values]
    return [("", {})]


def variants(redis_url: str | None) -> list[Variant]:
    import fender
    from fender.flask import Fender

    def installed(**options: Any) -> Any:
        app = fastapi_app()
        fender.install(app, **{**FENDER, **options})
        return app

    def flask_with(app: Any, **options: Any) -> Any:
        Fender(app, **{**FENDER, **options})
        return app

    def flask_keyed() -> Any:
        # An app with a secret_key pays for Flask's cookie sessions, with or without fender
        # (fender does not set one).
        app = flask_app()
        app.secret_key = SECRET
        return app

    def on(base: Variant, name: str, app: Any, *, started: bool = True) -> Variant:
        return Variant(base.group, name, app, base.asgi, base, started=started)

    def stacks(base: Variant, fender_app: Callable[..., Any], peers: Any, make: Any) -> list[Any]:
        label = "fender.install" if base.asgi else "Fender(app)"
        out = [on(base, f"{base.group} + {label}, default install", fender_app())]
        out += [on(base, f"↳ {name}", fender_app(**off)) for name, off in ABLATIONS.items()]
        if redis_url is not None:
            out += [
                on(base, f"{base.group} + {label}, limits shared through Redis{mode}",
                   fender_app(redis_url=redis_url, **options))
                for mode, options in redis_modes()
            ]  # fmt: skip
        stream = LOG[0]
        rows = peers(make, stream, "memory://", True)
        if redis_url is not None:
            rows += peers(make, stream, redis_url, False)
        return out + [on(base, name, app, started=False) for name, app in rows]

    raw = Variant("raw ASGI", "raw ASGI app", raw_asgi, asgi=True)
    fa = Variant("FastAPI", "FastAPI bare", fastapi_app(), asgi=True)
    raw_w = Variant("raw WSGI", "raw WSGI app", raw_wsgi, asgi=False)
    fl = Variant("Flask", "Flask bare", flask_app(), asgi=False)
    fl_key = Variant("Flask", "↳ bare + app.secret_key (no fender)", flask_keyed(), False, fl)
    send_wrapper = fastapi_app()
    send_wrapper.add_middleware(SendWrapper)
    return [
        raw,
        on(raw, "raw ASGI + fender.asgi.wrap", fender.asgi.wrap(raw_asgi, **FENDER), started=False),
        fa,
        *stacks(fa, installed, fastapi_peers, fastapi_app),
        on(fa, "reference: 1 pure-ASGI middleware wrapping send", send_wrapper, started=False),
        raw_w,
        on(raw_w, "raw WSGI + fender.wsgi.wrap", fender.wsgi.wrap(raw_wsgi, **FENDER)),
        fl,
        *stacks(fl, lambda **o: flask_with(flask_app(), **o), flask_peers, flask_app),
        fl_key,
        on(fl_key, "Flask with secret_key + Fender(app)", flask_with(flask_keyed())),
    ]


def verdicts(measured: list[Variant]) -> str:
    """The targets, met or missed by how much, from this run's medians."""
    import statistics

    notes = []
    for v in measured:
        if v.baseline is None or v.baseline.group != v.group or not v.name.startswith(v.group):
            continue
        ratio = statistics.median(v.ratios)
        if v.name.endswith("default install"):
            target = DEFAULT_TARGET
        elif "limits shared through Redis" in v.name:
            target = REDIS_TARGET
        else:
            continue
        note = target_note(v.name, ratio, target)
        if ratio > target:
            bare = statistics.median(v.baseline.samples) / 1000
            over = statistics.median(v.added) / 1000 - (target - 1) * bare
            note += f" (about {over:.0f} µs a request over the target's budget)"
        notes.append(f"- {note}")
    return "Targets (issue 16), from this run:\n\n" + "\n".join(notes)


# --- reference layers -------------------------------------------------------------------------


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
    fd = LOG[0].fileno()
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


def main() -> None:
    parser = arguments(argparse.ArgumentParser(description=__doc__.split("\n", 1)[0]), rounds=100)
    parser.add_argument("--log-file", default=os.devnull, help="where log lines go")
    parser.add_argument(
        "--multiprocess", action="store_true", help="prometheus_client multiprocess (mmap) mode"
    )
    parser.add_argument("--no-redis", action="store_true", help="leave the Redis rows out")
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
    LOG.append(log)
    settings = fender.load_settings({}, env_file=None, **FENDER)
    fender.configure_logging(settings, fmt="json", stream=log)

    started = time.monotonic()
    with redis_server() if not args.no_redis else contextlib.nullcontext() as redis_url:
        measured = variants(redis_url)
        measure(measured, args.rounds, args.batch)
    seconds = time.monotonic() - started
    table = markdown_table(["group", "app", "µs/req", "ratio", "added µs"], rows(measured))
    timings = time_steps(number=2, repeat=1) if args.smoke else time_steps()
    steps_rows = [[name, f"{us:.2f}"] for name, us in timings]
    step_table = markdown_table(["step (one call)", "µs"], steps_rows)
    mode = "multiprocess (mmap)" if args.multiprocess else "single-process"
    target = "/dev/null" if args.log_file == os.devnull else "a file"
    no_redis = "" if redis_url else " (no redis-server here: the Redis rows are left out)"
    intro = (
        f"`bench/bench_request_path.py --rounds {args.rounds} --batch {args.batch}"
        f"{' --multiprocess' if args.multiprocess else ''}`, {seconds:.0f} s: GET {PATH} "
        "(a path parameter, a small JSON body) driven in-process straight into the app, no "
        "server or client. fender: a default install (rate limiter in memory with a limit no "
        "request reaches, security headers, monitor, JSON access log, started as a server "
        "starts it); `↳` rows under it: the same with one part off. Redis rows: REDIS_URL "
        f"to a local redis-server{no_redis}. Peer stacks: `bench/_peers.py`. Logs: JSON "
        f"lines, one write each, to {target}. µs/req: median per batch; ratio and added µs: "
        "medians of the per-round paired comparisons with the bare app of the group (targets: "
        f"default install <= {DEFAULT_TARGET:.2f}x bare, limits shared through Redis <= "
        f"{REDIS_TARGET:.2f}x)."
    )
    steps_title = "Where the time goes, one step at a time (best of 15 x 20,000 calls):"
    parts = [f"## Request path overhead ({mode} metrics)", machine_header(PACKAGES), intro]
    parts += [verdicts(measured), table, steps_title, step_table]
    name = "request_path_multiprocess" if args.multiprocess else "request_path"
    publish(name, parts, write=not args.no_write)
    log.close()
    if metrics_dir is not None:
        with contextlib.suppress(OSError):
            for path in Path(metrics_dir).iterdir():
                path.unlink()
            Path(metrics_dir).rmdir()


if __name__ == "__main__":
    main()
