"""``python -m examples.kvstore``: back up a storage node, or restore one from a backup.

Usage::

    python -m examples.kvstore backup  [--url URL] --out DIR
    python -m examples.kvstore restore [--url URL] --from DIR

``URL`` defaults to ``$KV_LOCAL_URL``, else ``sqlite:///data/kv-local.db`` (the service's local
node). What a backup holds, and how each kind restores, is in ``backup.py``. Exit status: 0
done, 1 the backup or restore failed (the message says why), 2 a usage error (a bad URL).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

from examples.kvstore.backup import BackupError, Report, backup, restore

DEFAULT_URL: Final = "sqlite:///data/kv-local.db"


def _parser() -> argparse.ArgumentParser:
    default_url = os.environ.get("KV_LOCAL_URL") or DEFAULT_URL
    parser = argparse.ArgumentParser(
        prog="python -m examples.kvstore",
        description="Back up or restore a key-value storage node (SQLite file or Redis).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (
        ("backup", "copy a node into a new backup directory"),
        ("restore", "put a backup back into a node (which may be serving)"),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--url",
            default=default_url,
            help=f"the node: redis://, rediss://, unix:// or sqlite:///path (default: {default_url}"
            ", from KV_LOCAL_URL or built in)",
        )
        if name == "backup":
            command.add_argument("--out", required=True, metavar="DIR", help="backup directory")
            command.add_argument(
                "--save-timeout",
                type=float,
                default=600.0,
                metavar="SECONDS",
                help="how long to wait for Redis's BGSAVE (default: 600)",
            )
        else:
            command.add_argument(
                "--from", dest="source", required=True, metavar="DIR", help="backup directory"
            )
        command.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            metavar="SECONDS",
            help="per call to the node: Redis socket timeout, SQLite busy timeout (default: 10)",
        )
    return parser


def _summary(command: str, report: Report) -> list[str]:
    manifest = report.manifest
    counts = f"{manifest['keys']} keys and {manifest['hints']} hints"
    if command == "backup":
        files = ", ".join(manifest["files"])
        lines = [f"backed up {counts} of {manifest['url']} to {report.directory} ({files})"]
        lines += [f"note: {note}" for note in manifest.get("notes", [])]
        return lines
    restored = manifest["restored"]
    line = (
        f"restored {manifest['url']} from {report.directory} "
        f"({counts}, backed up {manifest['time']})"
    )
    if "removed" in restored:
        line += f"; removed {restored['removed']} keys written since"
    return [line]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "backup":
            report = backup(
                args.url, args.out, timeout=args.timeout, save_timeout=args.save_timeout
            )
        else:
            report = restore(args.url, args.source, timeout=args.timeout)
    except ValueError as exc:  # a URL that names no node (ConfigurationError included)
        parser.error(str(exc))
    except BackupError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    for line in _summary(args.command, report):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
