"""The /status page in a real browser: headless Chromium against a uvicorn server.

The page of a full summary (active alerts, sparklines with gaps, slow routes) is served with
fender's own headers and its own policy (plus a ``report-uri``), and must render its
sparklines and alert rows with no console message and no CSP violation; a screenshot is kept
in artifacts/status_page.png. The detection is proved on negative controls: the same page
with an inline style attribute, or an inline script, must be caught twice, in Chromium's
console log and by a violation report to the server.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fender.http.health import CSS_TYPE, HTML_TYPE
from fender.http.status_page import PAGE_CSP, STYLESHEET

from browser import ARTIFACTS, load, serve_app
from servers import CommandServer, wait_for

pytestmark = pytest.mark.e2e

SCREENSHOT = ARTIFACTS / "status_page.png"
WINDOW = (1280, 1800)
CONTROLS = {
    "/bad/inline-style": "style-src-attr",
    "/bad/inline-script": "script-src-elem",
}


@pytest.fixture(scope="module")
def server() -> Iterator[CommandServer]:
    with serve_app("status_page_apps:app") as running:
        yield running


def reports(server: CommandServer, path: str) -> list[dict[str, object]]:
    """The violation reports the server received from the page at ``path``."""
    received = httpx.get(f"{server.url}/csp-reports", timeout=10).json()
    return [r["csp-report"] for r in received if r["csp-report"]["document-uri"].endswith(path)]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR), checking the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", head
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_page_is_served_with_its_own_headers_and_policy(server):
    page = httpx.get(f"{server.url}/status", timeout=10)
    assert page.headers["content-type"] == HTML_TYPE
    assert page.headers["cache-control"] == "no-store"
    # The page's policy exactly, and a report directive: nothing the test relaxed.
    assert page.headers["content-security-policy"] == f"{PAGE_CSP[1]}; report-uri /csp-report"
    css = httpx.get(f"{server.url}/status/style.css", timeout=10)
    assert css.headers["content-type"] == CSS_TYPE
    assert css.content == STYLESHEET


def test_the_page_renders_clean_in_chromium_and_a_screenshot_is_kept(server, tmp_path):
    shown = load(
        f"{server.url}/status", tmp_path / "clean", screenshot=SCREENSHOT, window_size=WINDOW
    )
    assert shown.problems == [], shown.problems
    dom = shown.dom
    # Four sparklines, drawn: the p99 one in two pieces (its gap), error rate's in one.
    assert len(re.findall(r'<svg class="spark"', dom)) == 4
    p99 = dom.split('id="spark-p99_ms"', 1)[1].split("</svg>", 1)[0]
    assert p99.count("M") == 2
    assert "<title>error rate: last 12.0%, max 15.0%</title>" in dom
    # The alert rows, critical first, at the top of the page.
    assert dom.index('id="alerts"') < dom.index('id="traffic"') < dom.index('id="checks"')
    rows = re.findall(r'<tr class="(critical|warning)"><td class="severity">', dom)
    assert rows == ["critical", "warning", "warning"]  # two active, one resolved
    assert "(12 min ago)" in dom
    assert "/items/{item_id}" in dom
    hits = httpx.get(f"{server.url}/hits", timeout=10).json()
    assert "/status/style.css" in hits  # the stylesheet was allowed and fetched
    assert SCREENSHOT.stat().st_size > 10_000
    assert png_size(SCREENSHOT) == WINDOW

    # No violation report either. Reports travel apart from the page, so wait for one that
    # must come (a control's, loaded after) before judging that none came from the page.
    load(f"{server.url}/bad/inline-style", tmp_path / "after")
    wait_for(lambda: bool(reports(server, "/bad/inline-style")), 30, "the control's report")
    assert reports(server, "/status") == []


@pytest.mark.parametrize(("path", "directive"), CONTROLS.items(), ids=list(CONTROLS))
def test_a_violation_is_detected_in_the_log_and_reported(server, tmp_path, path, directive):
    shown = load(f"{server.url}{path}", tmp_path)
    assert shown.problems, shown.log[-3000:]
    assert any("Content Security Policy" in line for line in shown.problems), shown.problems
    assert "inline script ran" not in shown.dom.split("<body", 1)[0]  # the title kept
    wait_for(lambda: bool(reports(server, path)), 30, f"the report from {path}")
    (report, *_) = reports(server, path)
    assert report["effective-directive"] == directive
    assert report["blocked-uri"] == "inline"
