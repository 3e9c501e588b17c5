"""A real browser against the security headers: headless Chromium and a uvicorn server.

The nonce'd inline script runs and the one without the nonce is blocked (the page sees the
violation, the server receives the report); a page framed from another origin is refused,
while the same page without fender's headers loads in the same frame set (the control).
Under CI (``CI`` or FENDER_REQUIRE_SERVICES set) a missing Chromium fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers import CommandServer, find_chromium, wait_for

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[CommandServer]:
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    app = CommandServer(
        [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}", "headers_apps:app"],
        cwd=HERE,
        env={"PYTHONPATH": path, "FENDER_LOG_FORMAT": "json"},
    )
    app.start()
    try:
        yield app
    finally:
        app.close()


def dump_dom(url: str, profile: Path) -> str:
    """The DOM of ``url`` once loaded (frames included), as headless Chromium renders it."""
    argv = [
        find_chromium(),
        "--headless",
        "--no-sandbox",  # runs as root in CI containers
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_nonced_script_runs_and_the_other_is_blocked_and_reported(server, tmp_path):
    dom = dump_dom(f"{server.url}/", tmp_path)
    assert "nonce-ran" in dom
    assert "inline-ran" not in dom.split("<script", 1)[0]  # the output div, before the scripts
    assert "violation:script-src-elem" in dom

    def reported() -> bool:
        reports = httpx.get(f"{server.url}/reports", timeout=5).json()
        return any(r["csp-report"]["effective-directive"] == "script-src-elem" for r in reports)

    wait_for(reported, 30, "the CSP violation report")
    (report,) = [
        r["csp-report"]
        for r in httpx.get(f"{server.url}/reports", timeout=5).json()
        if r["csp-report"]["effective-directive"] == "script-src-elem"
    ]
    assert report["blocked-uri"] == "inline"
    assert report["disposition"] == "enforce"


def test_a_page_framed_from_another_origin_is_refused(server, tmp_path):
    # Another origin: the same server under another host name.
    attacker = f"http://localhost:{server.port}/attacker?target={server.url}"
    dump_dom(attacker, tmp_path)
    beacons = httpx.get(f"{server.url}/beacons", timeout=5).json()
    # Both pages were requested; only the one without fender's headers was rendered.
    assert {"served:framed", "served:framed-open"} <= set(beacons)
    assert "framed-open" in beacons
    assert "framed" not in beacons


def test_the_headers_the_browser_got(server):
    response = httpx.get(f"{server.url}/", timeout=5)
    assert "'nonce-" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert "strict-transport-security" not in response.headers  # plain http
