"""The HTML page of ``/status``: what the JSON summary says, for a person with a browser.

Active alerts first, then traffic (the 1, 5 and 15 minute windows, sparklines of the last
15 minutes, the slowest routes), then the checks, breakers and memory. The traffic and alert
keys come from the in-process monitor; an app without it (or with it off) still gets a page,
which says there is no traffic data.

Its stylesheet is served at a path of its own and it refreshes itself with a meta refresh, so
that a strict ``Content-Security-Policy`` (no inline style, no script at all) holds. Every
string of the summary is escaped: route names, check outputs and alert messages can carry
text a client chose.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from fender.http.sparkline import DASH, describe, finite, sparkline

__all__ = ["DEFAULT_REFRESH_SECONDS", "PAGE_CSP", "STYLESHEET", "status_page"]

_POLICY: Final = (
    "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE_CSP: Final = ("content-security-policy", _POLICY)
"""The page's own policy: its stylesheet and nothing else, whatever the app's profile
(the middleware keeps a response's own CSP; the api profile's would block the stylesheet)."""
DEFAULT_REFRESH_SECONDS: Final = 10
"""How often the page reloads itself when the summary does not say (no monitor)."""

_WINDOWS: Final = (("1m", "1 min"), ("5m", "5 min"), ("15m", "15 min"))
_SEVERITIES: Final = frozenset({"warning", "critical"})  # the only classes an alert row gets
_MIB: Final = 1024 * 1024
_esc = html.escape


def status_page(summary: Mapping[str, Any], *, now: float | None = None) -> str:
    """The HTML of ``/status`` for a browser, from the summary ``/status`` answers as JSON.

    ``now`` (epoch seconds, default the wall clock) is what "since ... (12 min ago)" counts
    from. Keys the monitor adds (``refresh_seconds``, ``traffic``, ``alerts``) may be absent.
    """
    wall = time.time() if now is None else now
    refresh = finite(summary.get("refresh_seconds"))
    refresh_seconds = max(1, round(refresh)) if refresh is not None else DEFAULT_REFRESH_SECONDS
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{refresh_seconds}">
<title>{_text(summary.get("service"))} status</title>
<link rel="stylesheet" href="/status/style.css">
</head>
<body>
<header class="{_text(summary.get("status"))}">
<h1>{_text(summary.get("service"))}: <span id="overall">{_text(summary.get("status"))}</span></h1>
<p>state <strong id="state">{_text(summary.get("state"))}</strong> · up
{_fixed(summary.get("uptime_seconds"), 1)}s since {_text(summary.get("started_at"))} · worker pid
{_text(summary.get("pid"))} · version {_text(summary.get("version"))} · reloads every
{refresh_seconds}s</p>
</header>
<main>
{_alerts(summary.get("alerts"), wall)}
{_traffic(summary.get("traffic"))}
<section><h2>Checks</h2>
<table id="checks"><thead><tr><th>check</th><th>status</th><th>output</th></tr></thead>
<tbody>{_checks(summary.get("checks") or {})}</tbody></table></section>
<section><h2>Circuit breakers</h2>
<table id="breakers"><thead><tr><th>breaker</th><th>state</th><th>next trial in</th></tr></thead>
<tbody>{_breakers(summary.get("breakers") or [])}</tbody></table></section>
<section><h2>Memory</h2><p id="memory">{_memory(summary.get("memory") or {})}</p></section>
</main>
</body>
</html>
"""


# --- values ---------------------------------------------------------------------------------


def _text(value: object) -> str:
    """A string of the summary, escaped; None (no subject, no version) as a dash."""
    return DASH if value is None else _esc(str(value))


def _severity(alert: Mapping[str, Any]) -> str:
    severity = alert.get("severity")
    return severity if isinstance(severity, str) and severity in _SEVERITIES else "unknown"


def _values(series: object) -> list[object]:
    return list(series) if isinstance(series, list | tuple) else []


def _fixed(value: object, digits: int) -> str:
    number = finite(value)
    return DASH if number is None else f"{number:,.{digits}f}"


def _count(value: object) -> str:
    number = finite(value)
    return DASH if number is None else f"{round(number):,}"


def _percent(value: object, digits: int = 1) -> str:
    number = _times_100(value)
    return DASH if number is None else f"{number:.{digits}f}%"


def _times_100(value: object) -> float | None:
    number = finite(value)
    return None if number is None else finite(number * 100)  # 1e307 * 100 is no number


def _ms(value: object) -> str:
    number = finite(value)
    if number is None:
        return DASH
    return f"{number:,.1f}" if number < 100 else f"{number:,.0f}"  # noqa: PLR2004  (a tenth of 100 ms is noise)


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:g} min" if seconds >= 60 else f"{seconds:g} s"  # noqa: PLR2004


def _when(iso: object, now: float) -> str:
    """``<time>`` for a summary timestamp, with how long ago it was (from ``now``)."""
    if iso is None:
        return DASH
    parsed = _parse(iso)
    if parsed is None:  # not a timestamp: said as it came, without a made-up age
        return f"<time>{_text(iso)}</time>"
    at, shown = parsed
    return f'<time datetime="{_text(iso)}">{shown}</time> ({_ago(now - at)})'


def _parse(iso: object) -> tuple[float, str] | None:
    """Epoch seconds and the UTC time to show, of an ISO 8601 timestamp (naive: UTC)."""
    if not isinstance(iso, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(iso)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        utc = parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # not a timestamp, or one out of datetime's range
        return None
    return utc.timestamp(), utc.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(seconds: float) -> str:
    # A timestamp a little ahead of this worker's clock (another worker's) is "0 min ago".
    minutes = int(max(seconds, 0.0) // 60)
    if minutes < 120:  # noqa: PLR2004  (under two hours, minutes read best)
        return f"{minutes} min ago"
    return f"{minutes // 60} h {minutes % 60} min ago"


_SERIES: Final[tuple[tuple[str, str, Callable[[float], str]], ...]] = (
    ("requests_per_s", "requests/s", functools.partial(_fixed, digits=2)),
    ("error_rate", "error rate", _percent),
    ("p99_ms", "p99 latency (ms)", _ms),
    ("memory_ratio", "memory used", functools.partial(_percent, digits=0)),
)


# --- sections -------------------------------------------------------------------------------


def _alerts(alerts: Mapping[str, Any] | None, now: float) -> str:
    if not alerts:
        return (
            '<section id="alerts" class="alerts"><h2>Alerts</h2>'
            '<p class="note">No alert data: the in-process monitor is off.</p></section>'
        )
    # Critical first: the eye lands on the top row (the order is otherwise the monitor's).
    active = sorted(alerts.get("active") or [], key=lambda a: a.get("severity") != "critical")
    if active:
        worst = "critical" if active[0].get("severity") == "critical" else "warning"
        rows = "".join(
            f'<tr class="{_severity(a)}"><td class="severity">{_text(a.get("severity"))}</td>'
            f"<td>{_text(a.get('name'))}</td><td>{_text(a.get('subject'))}</td>"
            f"<td>{_text(a.get('message'))}</td><td>since {_when(a.get('since'), now)}</td></tr>"
            for a in active
        )
        head = (
            f'<section id="alerts" class="alerts firing {worst}">'
            f"<h2>Active alerts ({len(active)})</h2>"
            '<table id="active-alerts"><thead><tr><th>severity</th><th>alert</th>'
            "<th>subject</th><th>message</th><th>firing</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    else:
        head = (
            '<section id="alerts" class="alerts clear"><h2>Alerts</h2>'
            '<p id="no-alerts">No active alerts.</p>'
        )
    resolved = alerts.get("resolved") or []
    if not resolved:
        return head + "</section>"
    rows = "".join(
        f'<tr class="{_severity(a)}"><td class="severity">{_text(a.get("severity"))}</td>'
        f"<td>{_text(a.get('name'))}</td><td>{_text(a.get('subject'))}</td>"
        f"<td>{_text(a.get('message'))}</td><td>since {_when(a.get('since'), now)}</td>"
        f"<td>{_when(a.get('resolved_at'), now)}</td></tr>"
        for a in resolved
    )
    return (
        f"{head}<h3>Recently resolved</h3>"
        '<table id="resolved-alerts" class="quiet"><thead><tr><th>severity</th><th>alert</th>'
        "<th>subject</th><th>message</th><th>fired</th><th>resolved</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _traffic(traffic: Mapping[str, Any] | None) -> str:
    if not traffic:
        return (
            '<section id="traffic"><h2>Traffic</h2><p id="no-traffic" class="note">No traffic '
            "data: the in-process monitor is off (or this app was built without it).</p>"
            "</section>"
        )
    windows = traffic.get("windows") or {}
    rows = "".join(
        f"<tr><th>{label}</th>{_window_cells(windows.get(key) or {})}</tr>"
        for key, label in _WINDOWS
    )
    workers = finite(traffic.get("workers"))
    merged = (
        f'<p class="note">{_count(workers)} worker{"" if workers == 1 else "s"} running; '
        "the requests of workers recycled in the last 15 minutes still count.</p>"
        if workers is not None
        else ""
    )
    return (
        f'<section id="traffic"><h2>Traffic</h2>{merged}'
        '<table id="windows"><thead><tr><th>last</th><th>requests</th><th>requests/s</th>'
        "<th>error rate</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th>"
        f"<th>rate-limited</th></tr></thead><tbody>{rows}</tbody></table>"
        f"{_sparklines(traffic.get('series') or {})}"
        "<h3>Slowest routes <small>(last 5 min, by p99)</small></h3>"
        f"{_routes(traffic.get('slowest_routes') or [])}</section>"
    )


def _window_cells(window: Mapping[str, Any]) -> str:
    cells = (
        _count(window.get("requests")),
        _fixed(window.get("requests_per_s"), 2),
        _percent(window.get("error_rate")),
        _ms(window.get("p50_ms")),
        _ms(window.get("p95_ms")),
        _ms(window.get("p99_ms")),
        _count(window.get("rate_limited")),
    )
    return "".join(f'<td class="num">{cell}</td>' for cell in cells)


def _sparklines(series: Mapping[str, Any]) -> str:
    charts = []
    for key, label, fmt in _SERIES:
        values = _values(series.get(key))
        last, top = describe(values, fmt)
        charts.append(
            f'<figure class="chart" id="spark-{key}"><figcaption>{label} '
            f'<span class="reading">last <strong>{last}</strong> · max {top}</span></figcaption>'
            f"{sparkline(values, label=label, fmt=fmt)}</figure>"
        )
    step = finite(series.get("step_seconds"))
    longest = max((len(_values(series.get(key))) for key, _, _ in _SERIES), default=0)
    said = (
        f"One point every {step:g} s over the last {_duration(step * longest)}; "
        "a gap is a step without data."
        if step is not None and longest
        else "No series yet."
    )
    return f'<div class="charts" id="sparklines">{"".join(charts)}</div><p class="note">{said}</p>'


def _routes(routes: Sequence[Mapping[str, Any]]) -> str:
    if not routes:
        return '<p id="no-routes" class="note">No requests in the last 5 minutes.</p>'
    rows = "".join(
        f"<tr><td><code>{_text(r.get('route'))}</code></td>"
        f'<td class="num">{_count(r.get("requests"))}</td>'
        f'<td class="num">{_percent(r.get("error_rate"))}</td>'
        f'<td class="num">{_ms(r.get("p50_ms"))}</td><td class="num">{_ms(r.get("p95_ms"))}</td>'
        f'<td class="num">{_ms(r.get("p99_ms"))}</td></tr>'
        for r in routes
    )
    return (
        '<table id="routes"><thead><tr><th>route</th><th>requests</th><th>error rate</th>'
        f"<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _checks(checks: Mapping[str, Any]) -> str:
    return (
        "".join(
            f'<tr class="{_text(c.get("status"))}"><td>{_esc(str(name))}</td>'
            f"<td>{_text(c.get('status'))}</td><td>{_esc(str(c.get('output') or ''))}</td></tr>"
            for name, c in checks.items()
        )
        or '<tr><td colspan="3">no checks registered</td></tr>'
    )


def _breakers(breakers: Sequence[Mapping[str, Any]]) -> str:
    return (
        "".join(
            f'<tr class="{_text(b.get("state"))}"><td>{_text(b.get("name"))}</td>'
            f"<td>{_text(b.get('state'))}</td><td>{_fixed(b.get('retry_after'), 1)}s</td></tr>"
            for b in breakers
        )
        or '<tr><td colspan="3">no circuit breakers</td></tr>'
    )


def _memory(memory: Mapping[str, Any]) -> str:
    ratio = _times_100(memory.get("used_ratio"))
    limit = finite(memory.get("limit_bytes"))
    if ratio is not None and limit is not None:
        percent = round(ratio)
        return (
            f'<meter min="0" max="100" low="75" high="85" optimum="0" value="{percent}">'
            f"{percent}%</meter> {percent}% of {_count(limit // _MIB)} MiB"
        )
    rss = finite(memory.get("rss_bytes"))
    resident = DASH if rss is None else _count(rss // _MIB)
    return f"{resident} MiB resident (no limit set)"


STYLESHEET: Final = b"""body{font-family:system-ui,sans-serif;margin:0;color:#1d232a;
background:#f6f7f9}
header{padding:1rem 2rem;color:#fff;background:#2f7d32}
header.warn{background:#b26a00}header.fail{background:#b3261e}
h1{margin:0 0 .3rem;font-size:1.4rem}main{padding:1rem 2rem}
h2{margin:1.2rem 0 .5rem;font-size:1.15rem}h3{margin:1rem 0 .4rem;font-size:1rem}
small,.note{color:#5f6b7a;font-weight:400}.note{font-size:.85rem;margin:.3rem 0 .6rem}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:1rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #dde1e6}
td.num,#windows th+th,#routes th+th{text-align:right;white-space:nowrap;
font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-all}
tr.pass td:nth-child(2),tr.closed td:nth-child(2){color:#2f7d32;font-weight:600}
tr.warn td:nth-child(2),tr.half_open td:nth-child(2){color:#b26a00;font-weight:600}
tr.fail td:nth-child(2),tr.open td:nth-child(2),
tr.forced_open td:nth-child(2){color:#b3261e;font-weight:600}
meter{width:12rem;height:1rem}
.alerts{margin:0 0 1rem;padding:.6rem 1rem;background:#fff;border-left:.4rem solid #2f7d32}
.alerts h2{margin-top:0}.alerts table{margin-bottom:.4rem}
.alerts.firing.warning{background:#fff4e0;border-color:#b26a00}
.alerts.firing.critical{background:#fdeceb;border-color:#b3261e}
.alerts.firing.warning h2{color:#8a5200}.alerts.firing.critical h2{color:#b3261e}
#no-alerts{margin:0;color:#2f7d32;font-weight:600}
td.severity{font-size:.75rem;font-weight:700;text-transform:uppercase;white-space:nowrap}
#active-alerts tr.critical td.severity{color:#fff;background:#b3261e}
#active-alerts tr.warning td.severity{color:#fff;background:#b26a00}
#active-alerts tr.critical td{font-weight:600}
table.quiet{font-size:.85rem;color:#5f6b7a}
table.quiet tr.critical td.severity{color:#b3261e}
table.quiet tr.warning td.severity{color:#b26a00}
.charts{display:flex;flex-wrap:wrap;gap:.8rem}
figure.chart{margin:0;padding:.4rem .6rem;background:#fff;border:1px solid #dde1e6}
figcaption{font-size:.8rem;color:#5f6b7a;margin-bottom:.2rem}
.reading{float:right;margin-left:1rem}.reading strong{color:#1d232a}
svg.spark{display:block;color:#1f5fa8}svg.spark .base{stroke:#c9d0d8}
#spark-error_rate svg.spark{color:#b3261e}#spark-memory_ratio svg.spark{color:#b26a00}
"""
