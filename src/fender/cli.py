"""The ``fender`` command line; the only module of fender that prints.

Commands: ``fender env`` (an annotated ``.env.example``), ``fender doctor`` (is this environment
ready for production?). Every command has ``--help``.
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
