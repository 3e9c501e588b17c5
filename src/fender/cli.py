"""The ``fender`` command line; the only module of fender that prints.

Commands: ``fender env`` (an annotated ``.env.example``), ``fender doctor`` (is this environment
ready for production?), ``fender probe URL`` (a health probe without curl), ``fender drain``
(readiness off before SIGTERM). Every command has ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fender._status import Status
from fender._version import __version__

__all__ = ["main"]

_MARK = {Status.PASS: "pass", Status.WARN: "WARN", Status.FAIL: "FAIL"}


def _cmd_env(args: argparse.Namespace) -> int:
    from fender.settings import render_env_example, render_env_table

    print(render_env_table() if args.format == "markdown" else render_env_example())
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from fender.doctor import diagnose

    report = diagnose(env_file=args.env_file)
    for finding in report.findings:
        line = f"[{_MARK[finding.status]}] {finding.check}: {finding.reason}"
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


def _cmd_probe(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(args.url, headers={"Accept": "application/json"})  # noqa: S310  (the user's URL, for a health probe)
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310
            code, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read()
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


def _cmd_drain(args: argparse.Namespace) -> int:
    import time

    from fender.runtime.drain import request_drain
    from fender.settings import load_settings

    settings = load_settings()
    directory = args.runtime_dir or settings.runtime_dir
    wait = settings.drain_seconds if args.wait is None else args.wait
    flag = request_drain(directory, "fender drain")
    print(f"draining: readiness is 503 on every worker reading {flag}; waiting {wait:g}s")
    time.sleep(wait)
    return 0


def _parser() -> argparse.ArgumentParser:
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
        help="check this environment for production readiness",
        description="Print one line per check (pass / WARN / FAIL, reason, fix). Exit code 0 "
        "when ready, 1 with warnings under --strict, 2 on any failure.",
    )
    doctor.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    doctor.add_argument(
        "--env-file",
        default=".env",
        help="dotenv file read under the environment (default: .env, if present)",
    )
    doctor.set_defaults(handler=_cmd_doctor)

    probe = commands.add_parser(
        "probe",
        help="exit 0 when URL answers a passing health check (Docker HEALTHCHECK)",
        description="GET URL; exit 0 on a 2xx answer whose status is pass or warn, else 1. "
        "No curl needed in the image.",
    )
    probe.add_argument("url", help="e.g. http://127.0.0.1:8000/health/ready")
    probe.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
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
        "--wait", type=float, default=None, help="seconds to wait (default: FENDER_DRAIN_SECONDS)"
    )
    drain.add_argument("--runtime-dir", default=None, help="default: FENDER_RUNTIME_DIR")
    drain.set_defaults(handler=_cmd_drain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
