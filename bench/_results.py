"""Shared by the benchmarks: a machine header and named sections of ``bench/RESULTS.md``.

A benchmark renders its table with :func:`markdown_table` and stores it with
:func:`write_section`, which replaces only the text between ``<!-- bench:NAME:start -->`` and
``<!-- bench:NAME:end -->`` (appending the section, or creating the file, when missing), so
each benchmark rewrites its own part and leaves the others' alone.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "RESULTS",
    "cpu_model",
    "git_revision",
    "machine_header",
    "markdown_table",
    "publish",
    "target_note",
    "write_section",
]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_TITLE = (
    "# Benchmark results\n\n"
    "Each section is written by the benchmark it names; rerun that benchmark to refresh it.\n"
)


def cpu_model() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def git_revision() -> str:
    """The checkout's short commit, with ``+dirty`` when files differ from it; ``?`` outside git."""
    root = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return commit + ("+dirty" if dirty else "")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_header(packages: Iterable[str] = ()) -> str:
    """One Markdown paragraph: date, platform, CPU, cores, Python and ``packages``' versions."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    run = (
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.platform()}; "
        f"CPU: {cpu_model()}; {cores} usable cores; "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"fender at {git_revision()}."
    )
    lines = [run]
    if versions:
        lines.append(f"Packages: {versions}.")
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; numeric columns (all cells numbers) are right-aligned."""
    body = [[str(cell) for cell in row] for row in rows]
    numeric = [
        bool(body) and all(_is_number(row[i]) for row in body if i < len(row))
        for i in range(len(header))
    ]
    align = ["---:" if n else "---" for n in numeric]
    lines = [header, align, *body]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _is_number(cell: str) -> bool:
    return re.fullmatch(r"[-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?x?", cell.strip()) is not None


def target_note(
    label: str, value: float, target: float, *, at_most: bool = True, unit: str = "x"
) -> str:
    """``label``: ``value`` against the target, met or missed by how much (from the run).

    >>> target_note("FastAPI", 1.76, 1.15)
    'FastAPI 1.76x (target <= 1.15x): missed by 0.61x'
    >>> target_note("Flask", 0.95, 0.9, at_most=False)
    'Flask 0.95x (target >= 0.90x): met'
    """
    sign = "<=" if at_most else ">="
    met = value <= target if at_most else value >= target
    shown = f"{label} {value:.2f}{unit} (target {sign} {target:.2f}{unit})"
    return f"{shown}: met" if met else f"{shown}: missed by {abs(value - target):.2f}{unit}"


def write_section(name: str, content: str, path: Path = RESULTS) -> Path:
    """Put ``content`` in the section ``name`` of ``path``, replacing what was there."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name {name!r}: letters, digits, '_', '.', '-' only")
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{content.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else _TITLE
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        # A function replacement: the content's backslashes are not group references.
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def publish(name: str, parts: list[str], *, write: bool = True) -> str:
    """Print the section ``name`` made of ``parts`` and, unless not to ``write``, store it."""
    section = "\n\n".join(parts)
    print(section)
    if write:
        print(f"\nwritten to {write_section(name, section)}")
    return section
