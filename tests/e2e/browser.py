"""A real server and a real browser for end-to-end tests of pages: uvicorn and headless Chromium.

:func:`serve_app` runs any ASGI app (``module:attribute``) under uvicorn on a free loopback
port, for the length of a ``with`` block. :func:`load` opens a URL in headless Chromium once
and returns what a person would care about: the DOM after the load, every problem the page
reported (console messages, Content-Security-Policy violations) and, if asked, a screenshot.

How problems are seen: Chromium, started with ``--enable-logging=stderr --v=0``, writes each
console message of the page to stderr as ``...:INFO:CONSOLE:<line>] "<message>"`` (older
builds: ``CONSOLE(<line>)``). A CSP violation is one of them ("Applying inline style
violates the following Content Security Policy directive ..."; older builds said "Refused
to ..."). The pages under test run no script of their own, so any console line is a
problem. tests/e2e/test_status_page_chromium.py proves the detection on pages that violate
the policy on purpose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from servers import CommandServer, find_chromium, serving

__all__ = ["ARTIFACTS", "PageLoad", "load", "serve_app"]

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent.parent / "artifacts"
"""Where tests keep what a person may want to look at after a run (screenshots)."""
BIN = Path(sys.executable).parent
LOAD_TIMEOUT = 60.0  # seconds for one Chromium run; a loaded CI machine is slow to start one

# A console message (any level), or a CSP refusal however this build words it.
_PROBLEM = re.compile(r":CONSOLE[(:]|Content.Security.Policy|Refused to", re.IGNORECASE)
_FLAGS = (
    "--headless",
    "--no-sandbox",  # runs as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)


@dataclasses.dataclass(frozen=True, slots=True)
class PageLoad:
    """What one load of a page gave."""

    dom: str
    """The serialised DOM once the page loaded (``--dump-dom``)."""
    problems: list[str]
    """Chromium's log lines for console messages and CSP violations: [] for a clean page."""
    screenshot: Path | None
    """The PNG written, if one was asked for."""
    log: str
    """All Chromium wrote to stderr (for a failure's message)."""


@contextlib.contextmanager
def serve_app(
    app: str,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    pythonpath: Sequence[Path] = (HERE, HERE.parent),
    ready_path: str = "/",
) -> Iterator[CommandServer]:
    """``uvicorn app`` on a free port of 127.0.0.1 (``{port}`` in ``args`` is that port).

    ``pythonpath`` is put before the caller's PYTHONPATH (which names the fender under test):
    by default tests/e2e (the app modules) and tests (shared samples). The server is ready
    when ``ready_path`` answers, with any status; it gets SIGTERM at the end of the block.
    """
    path = os.pathsep.join([*map(str, pythonpath), os.environ.get("PYTHONPATH", "")])
    server = CommandServer(
        [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}", *args, app],
        ready_path=ready_path,
        cwd=HERE,
        env={"PYTHONPATH": path.rstrip(os.pathsep), **(env or {})},
    )
    with serving(server):
        yield server


def load(
    url: str,
    profile: Path,
    *,
    screenshot: Path | None = None,
    window_size: tuple[int, int] = (1280, 1800),
) -> PageLoad:
    """Load ``url`` in headless Chromium (profile directory ``profile``) and report on it.

    With ``screenshot``, a PNG of the window (``window_size``) is written there too, in the
    same load. A missing Chromium fails the test under CI and skips it elsewhere.
    """
    argv = [find_chromium(), *_FLAGS, f"--user-data-dir={profile}", "--dump-dom"]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.unlink(missing_ok=True)
        argv += [f"--screenshot={screenshot}", "--window-size={},{}".format(*window_size)]
    done = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=LOAD_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}:\n{done.stderr[-3000:]}")
    problems = [line for line in done.stderr.splitlines() if _PROBLEM.search(line)]
    return PageLoad(done.stdout, problems, screenshot, done.stderr)
