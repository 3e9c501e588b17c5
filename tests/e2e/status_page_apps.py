"""A bare ASGI app serving the /status page of a full summary, for headless Chromium.

``/status`` is ``status_page(full_summary())`` with the headers fender's ``/status`` sends
(its content type, no-store, :data:`PAGE_CSP`), the policy given one more directive,
``report-uri /csp-report``, so that a violation reaches this server as well as the console.
``/status/style.css`` is :data:`STYLESHEET`. The negative controls, ``/bad/inline-style`` and
``/bad/inline-script``, are the same page with an inline style attribute or an inline script
added: the test proves on them that a violation is seen. ``/csp-reports`` lists the reports
received, ``/hits`` the paths requested.
"""

from __future__ import annotations

from typing import Any

import orjson

from fender.http.endpoints import NO_STORE
from fender.http.health import CSS_TYPE, HTML_TYPE
from fender.http.status_page import PAGE_CSP, STYLESHEET, status_page

from status_samples import NOW, full_summary

REPORTING_POLICY = f"{PAGE_CSP[1]}; report-uri /csp-report"
PAGE = status_page(full_summary(), now=NOW)
INJECTED = {
    "/bad/inline-style": '<p style="color:red">inline style</p>',
    "/bad/inline-script": '<script>document.title = "inline script ran";</script>',
}
REPORTS: list[Any] = []
HITS: list[str] = []


def _page(path: str) -> str | None:
    if path == "/status":
        return PAGE
    if path in INJECTED:
        return PAGE.replace("<main>", "<main>" + INJECTED[path], 1)
    return None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The pages, the stylesheet, the report sink and what was seen."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    HITS.append(path)
    status, headers, body = 404, [("content-type", "text/plain")], b"not found"
    page = _page(path)
    if page is not None:
        status, body = 200, page.encode()
        headers = [("content-type", HTML_TYPE), NO_STORE, (PAGE_CSP[0], REPORTING_POLICY)]
    elif path == "/status/style.css":
        status, headers, body = 200, [("content-type", CSS_TYPE)], STYLESHEET
    elif path == "/csp-report":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        REPORTS.append(orjson.loads(b"".join(chunks)))
        status, headers, body = 204, [], b""
    elif path in ("/csp-reports", "/hits"):
        status, headers = 200, [("content-type", "application/json")]
        body = orjson.dumps(REPORTS if path == "/csp-reports" else HITS)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
