"""The HTML page of ``/status``: what the JSON summary says, for a person with a browser.

Its stylesheet is served at a path of its own, so that a strict ``Content-Security-Policy``
(no inline styles) can allow it.
"""

from __future__ import annotations

import html
from typing import Any, Final

__all__ = ["PAGE_CSP", "STYLESHEET", "status_page"]

_POLICY: Final = (
    "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE_CSP: Final = ("content-security-policy", _POLICY)
"""The page's own policy: its stylesheet and nothing else, whatever the app's profile
(the middleware keeps a response's own CSP; the api profile's would block the stylesheet)."""


def status_page(summary: dict[str, Any]) -> str:
    """The HTML of ``/status`` for a browser: the summary's checks, breakers and memory."""
    esc = html.escape
    rows = (
        "".join(
            f'<tr class="{esc(c["status"])}"><td>{esc(name)}</td><td>{esc(c["status"])}</td>'
            f"<td>{esc(str(c['output'] or ''))}</td></tr>"
            for name, c in summary["checks"].items()
        )
        or '<tr><td colspan="3">no checks registered</td></tr>'
    )
    breakers = (
        "".join(
            f'<tr class="{esc(b["state"])}"><td>{esc(str(b["name"]))}</td>'
            f"<td>{esc(b['state'])}</td>"
            f"<td>{float(b['retry_after']):.1f}s</td></tr>"
            for b in summary["breakers"]
        )
        or '<tr><td colspan="3">no circuit breakers</td></tr>'
    )
    memory = summary["memory"]
    ratio = memory["used_ratio"]
    percent = round(ratio * 100) if ratio is not None else None
    gauge = (
        f'<meter min="0" max="100" low="75" high="85" optimum="0" value="{percent}">'
        f"{percent}%</meter> {percent}% of {memory['limit_bytes'] // (1024 * 1024)} MiB"
        if percent is not None
        else f"{memory['rss_bytes'] // (1024 * 1024)} MiB resident (no limit set)"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(summary["service"])} status</title>
<link rel="stylesheet" href="/status/style.css">
</head>
<body>
<header class="{esc(summary["status"])}">
<h1>{esc(summary["service"])}: <span id="overall">{esc(summary["status"])}</span></h1>
<p>state <strong id="state">{esc(summary["state"])}</strong> · up {summary["uptime_seconds"]}s
since {esc(summary["started_at"])} · worker pid {summary["pid"]} · version
{esc(str(summary["version"]))}</p>
</header>
<main>
<section><h2>Checks</h2>
<table id="checks"><thead><tr><th>check</th><th>status</th><th>output</th></tr></thead>
<tbody>{rows}</tbody></table></section>
<section><h2>Circuit breakers</h2>
<table id="breakers"><thead><tr><th>breaker</th><th>state</th><th>next trial in</th></tr></thead>
<tbody>{breakers}</tbody></table></section>
<section><h2>Memory</h2><p id="memory">{gauge}</p></section>
</main>
</body>
</html>
"""


STYLESHEET: Final = b"""body{font-family:system-ui,sans-serif;margin:0;color:#1d232a;
background:#f6f7f9}
header{padding:1rem 2rem;color:#fff;background:#2f7d32}
header.warn{background:#b26a00}header.fail{background:#b3261e}
h1{margin:0 0 .3rem;font-size:1.4rem}main{padding:1rem 2rem}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:1rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #dde1e6}
tr.pass td:nth-child(2),tr.closed td:nth-child(2){color:#2f7d32;font-weight:600}
tr.warn td:nth-child(2),tr.half_open td:nth-child(2){color:#b26a00;font-weight:600}
tr.fail td:nth-child(2),tr.open td:nth-child(2),
tr.forced_open td:nth-child(2){color:#b3261e;font-weight:600}
meter{width:12rem;height:1rem}
"""
