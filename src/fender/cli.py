"""The ``fender`` command line; the only module of fender that prints.

Commands: ``fender env`` (an annotated ``.env.example``), ``fender doctor [--app module:attr]``
(are this environment, and the app, ready for production?), ``fender probe URL`` (a health probe
without curl), ``fender drain`` (readiness off before SIGTERM), ``fender workers`` (the worker
count and why), ``fender run APP`` (gunicorn, configured for this container). Every command
has ``--help``.
"""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace
from urllib.parse import urlsplit

from fender._version import __version__
from fender.errors import ConfigurationError  # a leaf: imports nothing

# Not typing.TYPE_CHECKING: typing is a cost ``fender probe`` need not pay (see main()).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    Args = Any  # argparse's Namespace, or the probe's SimpleNamespace: attributes by name

__all__ = ["main"]

_PROBE_TIMEOUT = 3.0
# Exit code of a bad argument or setting: argparse's own for a usage error.
_BAD_INPUT = 2


class _BadInputError(Exception):
    """An argument or the environment is unusable; ``main`` prints it in one line."""


def _seconds(*, allow_zero: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds, > 0 (or >= 0 with ``allow_zero``)."""

    def parse(text: str) -> float:
        value = _number_of_seconds(text, allow_zero=allow_zero)
        if value is None:
            import argparse

            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number of seconds {'>= 0' if allow_zero else '> 0'}"
            )
        return value

    return parse


def _number_of_seconds(text: str, *, allow_zero: bool) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        return None
    return value


def _probe_url(text: str) -> str:
    """``text`` when it is an http(s) URL with a host; a health probe needs nothing else."""
    example = "such as http://127.0.0.1:8000/health/ready"
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as error:
        raise _BadInputError(f"{text!r} is not a URL ({error}); give one {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _BadInputError(f"{text!r} is not an http:// or https:// URL; give one {example}")
    return text


def _cmd_env(args: Args) -> int:
    from fender._envdocs import render_env_example, render_env_table

    print(render_env_table() if args.format == "markdown" else render_env_example())
    return 0


class _working_directory_importable:  # noqa: N801  (used as a context manager)
    """As gunicorn does: the app's module is found from the directory the command runs in."""

    def __enter__(self) -> None:
        from pathlib import Path

        self.cwd = str(Path.cwd())
        self.added = self.cwd not in sys.path
        if self.added:
            sys.path.insert(0, self.cwd)

    def __exit__(self, *_: object) -> None:
        if self.added:
            sys.path.remove(self.cwd)


class _stdout_to_stderr:  # noqa: N801  (used as a context manager)
    """While the app is imported, what it writes to stdout (its log lines) goes to stderr.

    stdout is the command's answer (``--json`` for machines); redirected at the descriptor,
    so that log handlers holding the stream already are redirected too.
    """

    def __enter__(self) -> None:
        import os

        sys.stdout.flush()
        self.saved = os.dup(1)
        os.dup2(2, 1)

    def __exit__(self, *_: object) -> None:
        import os

        sys.stdout.flush()
        os.dup2(self.saved, 1)
        os.close(self.saved)


def _cmd_doctor(args: Args) -> int:
    from fender._status import Status
    from fender.doctor import diagnose

    if args.deploy is not None:
        from fender._deploy import diagnose_deploy

        report = diagnose_deploy(args.deploy)
    elif args.app is None:
        report = diagnose(env_file=args.env_file, app=None)
    else:
        with _working_directory_importable():
            report = diagnose(env_file=args.env_file, app=args.app)
    for finding in report.findings:
        mark = "pass" if finding.status is Status.PASS else str(finding.status).upper()
        line = f"[{mark}] {finding.check}: {finding.reason}"
        if finding.fix and finding.status is not Status.PASS:
            line += f" -> fix: {finding.fix}"
        print(line)
    code = report.exit_code(strict=args.strict)
    counts = {s: sum(f.status is s for f in report.findings) for s in Status}
    print(
        f"{counts[Status.PASS]} passed, {counts[Status.WARN]} warnings, "
        f"{counts[Status.FAIL]} failures: "
        + ("not ready" if code == 2 else "ready" if code == 0 else "ready with warnings")  # noqa: PLR2004
    )
    return code


def _cmd_probe(args: Args) -> int:
    import json

    from fender._probe import get

    url = _probe_url(args.url)
    try:
        code, body = get(url, args.timeout)
    except (OSError, ValueError) as error:
        print(f"fail: {args.url}: {error}")
        return 1
    try:
        status = str(json.loads(body).get("status", ""))
    except (ValueError, AttributeError):
        status = ""
    healthy = 200 <= code < 300 and status in ("", "pass", "warn")  # noqa: PLR2004
    print(f"{'ok' if healthy else 'fail'}: {args.url}: HTTP {code}{f' {status}' if status else ''}")
    return 0 if healthy else 1


def _cmd_drain(args: Args) -> int:
    import time

    from fender.runtime._drain import request_drain, runtime_directory
    from fender.settings import load_settings

    settings = load_settings()
    directory = args.runtime_dir or runtime_directory(settings)
    wait = settings.drain_seconds if args.wait is None else args.wait
    try:
        flag = request_drain(directory, "fender drain")
    except OSError as error:
        raise _BadInputError(f"cannot raise the drain flag in {directory}: {error}") from None
    print(f"draining: readiness is 503 on every worker reading {flag}; waiting {wait:g}s")
    time.sleep(wait)
    return 0


def _plan(args: Args) -> Any:
    """The server plan for ``args.app`` (kind detected, or measured with ``--measure``)."""
    from fender.runtime._launch import current_plan, detect_kind, measure_app, parse_app
    from fender.runtime._serve import configured_kind
    from fender.settings import load_settings

    settings = load_settings()
    if args.app:
        parse_app(args.app)  # a malformed spec is one line, before anything is imported
    if getattr(args, "measure", False):
        if not args.app:
            raise _BadInputError("--measure needs the app (module:attr) to import")
        measured = measure_app(args.app)
        return current_plan(settings, measured.kind, per_worker_mb=measured.rss_mb)
    if args.app:
        from fender.runtime._guard import resident_bytes

        # Sized before the import: this process stands for the master, which does not import
        # the app (unless GUNICORN_PRELOAD).
        master_mb = resident_bytes() / 2**20
        with _working_directory_importable(), _stdout_to_stderr():
            try:
                kind = detect_kind(args.app)
            except Exception as error:  # the app's own error: one line, not a traceback
                raise _BadInputError(
                    f"importing {args.app} raised {type(error).__name__}: {error}"
                ) from None
        return current_plan(settings, kind, master_rss_mb=master_mb)
    return current_plan(settings, configured_kind(settings))


def _cmd_workers(args: Args) -> int:
    import json

    plan = _plan(args)
    if args.json:
        print(json.dumps(plan.as_event(), indent=2))
        return 0
    inputs = plan.workers.inputs
    limits = plan.limits
    memory = "none" if limits.memory_mb is None else f"{limits.memory_mb:.0f} MiB"
    rows = [
        ("app kind", plan.kind, "detected" if args.app else "FENDER_WORKER_CLASS"),
        ("worker class", plan.worker_class, "FENDER_WORKER_CLASS"),
        ("cpus", str(inputs.cpus), limits.cpu_source),
        ("memory limit", memory, limits.memory_source),
        ("per worker", f"{inputs.per_worker_mb:.0f} MiB", inputs.sources["per_worker_mb"]),
        ("master", f"{inputs.master_rss_mb:.0f} MiB", "this process's RSS"),
        ("cpu workers", str(plan.workers.cpu_workers), "2*cpus+1 (sync) or cpus+1 (async)"),
        (
            "memory workers",
            str(plan.workers.memory_workers or "unbounded"),
            f"(limit*{inputs.budget:g} - master) / per worker",
        ),
        ("workers", str(plan.workers.workers), plan.workers.reason),
    ]
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    for name, value, source in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {source}")
    for problem in limits.problems:
        print(f"warning: {problem}")
    for warning in plan.workers.warnings:
        print(f"warning: {warning}")
    return 0


def _cmd_run(args: Args) -> int:  # noqa: RET503  (ends in os.execv, which never returns)
    import json
    import os

    from fender.runtime._launch import KIND_VARIABLE, PLAN_VARIABLE

    plan = _plan(args)
    for warning in plan.workers.warnings:
        print(f"fender run: warning: {warning}", file=sys.stderr)
    if args.dry_run:
        print(json.dumps(plan.as_event(), indent=2))
        return 0
    os.environ[PLAN_VARIABLE] = json.dumps(plan.as_event())
    os.environ[KIND_VARIABLE] = plan.kind
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:fender.runtime.gunicorn_conf",
        *args.gunicorn_args,
        args.app,
    ]
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # noqa: S606  (our interpreter; replaces this process)


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="fender",
        description="Make a web service production-ready: health, resilience, rate limits, "
        "metrics, logs.",
    )
    parser.add_argument("--version", action="version", version=f"fender {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    env = commands.add_parser(
        "env",
        help="print an annotated .env.example of every setting",
        description="Print every setting fender reads, with its default and meaning.",
    )
    env.add_argument(
        "--format",
        choices=("dotenv", "markdown"),
        default="dotenv",
        help="dotenv (default) or the Markdown table of the README",
    )
    env.set_defaults(handler=_cmd_env)

    doctor = commands.add_parser(
        "doctor",
        help="check this environment (and the app) for production readiness",
        description="Print one line per check (pass / WARN / FAIL, reason, fix). Exit code 0 "
        "when ready, 1 with warnings under --strict, 2 on any failure.",
    )
    doctor.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    doctor.add_argument(
        "--app",
        metavar="MODULE:ATTR",
        default=None,
        help="also judge the app's own secret key and debug flag, and whether it needs "
        "SECRET_KEY: the app as gunicorn names it (myproject.wsgi:application, "
        "flaskr:create_app()), imported from the working directory",
    )
    doctor.add_argument(
        "--env-file",
        default=".env",
        help="dotenv file read under the environment (default: .env, if present)",
    )
    doctor.add_argument(
        "--deploy",
        metavar="DIR",
        default=None,
        help="instead, judge the deploy files under DIR (Kubernetes manifests, compose files, "
        "Dockerfiles, a Procfile): probe paths fender serves, a grace period longer than drain "
        "plus graceful timeout, workers within the memory limit, a preStop hook",
    )
    doctor.set_defaults(handler=_cmd_doctor)

    probe = commands.add_parser(
        "probe",
        help="exit 0 when URL answers a passing health check (Docker HEALTHCHECK)",
        description="GET URL; exit 0 on a 2xx answer whose status is pass or warn, else 1. "
        "No curl needed in the image.",
    )
    probe.add_argument("url", help="e.g. http://127.0.0.1:8000/health/ready")
    probe.add_argument(
        "--timeout",
        type=_seconds(allow_zero=False),
        default=_PROBE_TIMEOUT,
        help=f"seconds (default {_PROBE_TIMEOUT:g})",
    )
    probe.set_defaults(handler=_cmd_probe)

    drain = commands.add_parser(
        "drain",
        help="turn readiness off on every worker, then wait (Kubernetes preStop hook)",
        description="Raise the drain flag in FENDER_RUNTIME_DIR: every worker answers "
        "/health/ready with 503 and closes keep-alive connections, while requests still "
        "succeed; then wait FENDER_DRAIN_SECONDS so the load balancer stops sending traffic "
        "before SIGTERM.",
    )
    drain.add_argument(
        "--wait",
        type=_seconds(allow_zero=True),
        default=None,
        help="seconds to wait (default: FENDER_DRAIN_SECONDS)",
    )
    drain.add_argument("--runtime-dir", default=None, help="default: FENDER_RUNTIME_DIR")
    drain.set_defaults(handler=_cmd_drain)

    workers = commands.add_parser(
        "workers",
        help="print the worker count and the inputs it comes from",
        description="workers = min(CPU formula, memory budget): 2*cpus+1 (sync) or cpus+1 "
        "(async) against floor((limit*0.75 - master) / per worker), from the container's "
        "cgroup limits (MEMORY_LIMIT_MB overrides) and FENDER_WORKER_MEMORY_MB.",
    )
    workers.add_argument("app", nargs="?", help="module:attr, to detect ASGI or WSGI")
    workers.add_argument(
        "--measure",
        action="store_true",
        help="import the app in a child process and use its RSS as the per-worker size",
    )
    workers.add_argument("--json", action="store_true", help="machine-readable output")
    workers.set_defaults(handler=_cmd_workers)

    run = commands.add_parser(
        "run",
        help="serve the app with gunicorn, configured for this container",
        description="Detect ASGI or WSGI, compute the configuration (see `fender workers`) "
        "and exec gunicorn with fender.runtime.gunicorn_conf. Arguments after -- go to "
        "gunicorn.",
    )
    run.add_argument("app", help="module:attr or module:factory(), as gunicorn names it")
    run.add_argument(
        "--measure", action="store_true", help="size workers by importing the app first"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print the configuration instead of serving"
    )
    run.add_argument("gunicorn_args", nargs="*", help="extra gunicorn arguments (after --)")
    run.set_defaults(handler=_cmd_run)
    return parser


def _plain_probe(argv: Sequence[str]) -> SimpleNamespace | None:
    """``probe URL [--timeout S]`` read without argparse, else None (argparse then decides).

    A container HEALTHCHECK runs the probe every few seconds all day: argparse and what it
    imports (gettext, re, shutil and its compressors) would double the probe's start-up.
    """
    if len(argv) not in (2, 4) or argv[0] != "probe":
        return None
    rest = list(argv[1:])
    timeout = str(_PROBE_TIMEOUT)
    if len(rest) == 3:  # noqa: PLR2004  (URL, --timeout, S in either order)
        at = rest.index("--timeout") if "--timeout" in rest else -1
        if at in {-1, 2}:  # no --timeout, or a --timeout without its value
            return None
        timeout = rest.pop(at + 1)
        rest.pop(at)
    url = rest[0]
    if url.startswith("-"):
        return None
    seconds = _number_of_seconds(timeout, allow_zero=False)
    if seconds is None:
        return None
    return SimpleNamespace(command="probe", url=url, timeout=seconds, handler=_cmd_probe)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = _plain_probe(argv) or _parser().parse_args(argv)
    handler: Callable[[Args], int] = args.handler
    try:
        return handler(args)
    except (ConfigurationError, _BadInputError) as error:
        # One line, like argparse's own errors: a bad setting is not a bug to trace.
        print(f"fender {args.command}: error: {error}", file=sys.stderr)
        return _BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
