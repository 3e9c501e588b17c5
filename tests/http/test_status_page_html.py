"""The /status page rendered from the summary: every section, nulls, missing keys, escaping."""

from __future__ import annotations

import copy
import datetime as dt
import math
import time
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fender.http.sparkline import DASH
from fender.http.status_page import DEFAULT_REFRESH_SECONDS, status_page

from status_samples import NOW, full_summary, legacy_summary

# Every element the page may hold; an element from a summary's string would be another one
# (or one of these, caught by counting '<' instead).
TAGS = {
    "html", "head", "meta", "title", "link", "body", "header", "h1", "h2", "h3", "p", "span",
    "strong", "small", "main", "section", "table", "thead", "tbody", "tr", "th", "td", "code",
    "time", "div", "figure", "figcaption", "svg", "line", "path", "circle", "meter",
}  # fmt: skip


class Elements(HTMLParser):
    """The elements of a page and their attributes, as a browser's tokenizer reads them."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def ids(self) -> list[str]:
        return [a["id"] for _, a in self.elements if a.get("id")]


def assert_inert(page: str) -> None:
    """Nothing the CSP would refuse, nothing but the page's own elements."""
    elements = Elements(page).elements
    assert {tag for tag, _ in elements} <= TAGS
    for tag, attrs in elements:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)


def test_the_full_summary_renders_every_section_alerts_first():
    page = status_page(full_summary(), now=NOW)
    ids = Elements(page).ids()
    for section in ("alerts", "active-alerts", "resolved-alerts", "traffic", "windows",
                    "sparklines", "routes", "checks", "breakers", "memory"):  # fmt: skip
        assert section in ids
    assert ids.index("alerts") < ids.index("traffic") < ids.index("checks")
    assert_inert(page)
    assert "None" not in page
    assert "nan" not in page.lower().replace("span", "")


def test_meta_refresh_from_the_summary_or_the_default():
    assert '<meta http-equiv="refresh" content="10">' in status_page(full_summary(), now=NOW)
    summary = {**full_summary(), "refresh_seconds": 30}
    assert '<meta http-equiv="refresh" content="30">' in status_page(summary, now=NOW)
    for odd in (None, "soon", 0, -5):
        page = status_page({**full_summary(), "refresh_seconds": odd}, now=NOW)
        expected = 1 if odd in (0, -5) else DEFAULT_REFRESH_SECONDS
        assert f'<meta http-equiv="refresh" content="{expected}">' in page


def test_active_alerts_critical_first_with_since_and_ago():
    page = status_page(full_summary(), now=NOW)
    active = page.split('id="active-alerts"', 1)[1].split("</table>", 1)[0]
    critical, warning = active.split('<tr class="')[1:]
    assert critical.startswith('critical"')
    assert "error_rate" in critical
    assert "5xx in 12.0% of requests over the last minute (threshold 5%)" in critical
    assert (
        'since <time datetime="2026-12-06T07:31:02Z">2026-12-06 07:31:02 UTC</time> '
        "(12 min ago)" in critical
    )
    assert f"<td>{DASH}</td>" in critical  # no subject
    assert warning.startswith('warning"')
    assert "<td>kv-peer</td>" in warning
    assert "(4 min ago)" in warning  # 4.5 minutes: whole minutes, rounded down
    assert 'class="alerts firing critical"' in page


def test_resolved_alerts_below_with_both_times():
    page = status_page(full_summary(), now=NOW)
    resolved = page.split('id="resolved-alerts"', 1)[1].split("</table>", 1)[0]
    assert "memory_high" in resolved
    assert "(2 h 33 min ago)" in resolved  # fired
    assert "(2 h 23 min ago)" in resolved  # resolved
    assert page.index('id="active-alerts"') < page.index('id="resolved-alerts"')


def test_only_warnings_make_a_warning_banner_and_none_a_clear_one():
    summary = full_summary()
    summary["alerts"]["active"] = summary["alerts"]["active"][:1]  # the warning
    assert 'class="alerts firing warning"' in status_page(summary, now=NOW)
    summary["alerts"] = {"active": [], "resolved": []}
    page = status_page(summary, now=NOW)
    assert 'class="alerts clear"' in page
    assert '<p id="no-alerts">No active alerts.</p>' in page
    assert "resolved-alerts" not in page


@pytest.mark.parametrize(
    ("since", "text"),
    [
        pytest.param("2026-12-06T07:43:01Z", "(0 min ago)", id="seconds"),
        pytest.param("2026-12-06T07:50:00Z", "(0 min ago)", id="another-worker-ahead"),
        pytest.param("2026-12-06T07:41:02", "(2 min ago)", id="naive-is-utc"),
        pytest.param("2026-12-06T09:41:02+02:00", "(2 min ago)", id="offset"),
        pytest.param("2026-12-04T07:43:02Z", "(48 h 0 min ago)", id="days"),
    ],
)
def test_ago_counts_from_the_now_given(since, text):
    summary = full_summary()
    summary["alerts"]["active"][0]["since"] = since
    assert text in status_page(summary, now=NOW)


def test_ago_counts_from_the_wall_clock_by_default():
    summary = full_summary()
    since = dt.datetime.fromtimestamp(time.time() - 330, dt.UTC)
    summary["alerts"]["active"][0]["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "(5 min ago)" in status_page(summary)


def test_an_unreadable_since_is_shown_as_it_came_without_an_age():
    summary = full_summary()
    summary["alerts"]["active"] = [{**summary["alerts"]["active"][0], "since": "yesterday"}]
    page = status_page(summary, now=NOW)
    assert "since <time>yesterday</time></td>" in page


def test_traffic_table_numbers_formatted():
    page = status_page(full_summary(), now=NOW)
    windows = page.split('id="windows"', 1)[1].split("</table>", 1)[0]
    one, five, fifteen = windows.split("<tr><th>")[2:]  # after the head's row
    cells = lambda row: row.replace('<td class="num">', "|").replace("</td>", "")  # noqa: E731
    assert cells(one).startswith("1 min</th>|240|4.00|12.1%|3.1|9.0|95.2|3")
    assert cells(five).startswith("5 min</th>|900|3.00|4.4%|2.9|8.2|88.0|3")
    assert cells(fifteen).startswith("15 min</th>|2,400|2.67|1.7%|2.8|8.0|1,234|1,250")
    assert "2 workers running;" in page


def test_nulls_are_dashes():
    summary = full_summary()
    summary["traffic"]["windows"]["1m"].update(
        requests=0, requests_per_s=0.0, errors=0, error_rate=None,
        p50_ms=None, p95_ms=None, p99_ms=None,
    )  # fmt: skip
    del summary["traffic"]["windows"]["15m"]
    page = status_page(summary, now=NOW)
    windows = page.split('id="windows"', 1)[1].split("</table>", 1)[0]
    one = windows.split("<tr><th>1 min</th>", 1)[1].split("</tr>", 1)[0]
    assert one.count(DASH) == 4
    fifteen = windows.split("<tr><th>15 min</th>", 1)[1].split("</tr>", 1)[0]
    assert fifteen.count(DASH) == 7
    routes = page.split('id="routes"', 1)[1].split("</table>", 1)[0]
    health = routes.split("<code>/health</code>", 1)[1].split("</tr>", 1)[0]
    assert health.count(DASH) == 4
    assert "None" not in page


def test_sparklines_with_their_step_and_span():
    page = status_page(full_summary(), now=NOW)
    ids = Elements(page).ids()
    for key in ("requests_per_s", "error_rate", "p99_ms", "memory_ratio"):
        assert f"spark-{key}" in ids
    assert page.count('<svg class="spark"') == 4
    assert "One point every 15 s over the last 15 min" in page
    assert "<title>error rate: last 12.0%, max 15.0%</title>" in page
    assert "<title>p99 latency (ms): last 94.0, max 94.0</title>" in page
    assert "<title>memory used: last 61%, max 61%</title>" in page
    assert 'error rate <span class="reading">last <strong>12.0%</strong> · max 15.0%' in page
    p99 = page.split('id="spark-p99_ms"', 1)[1].split("</svg>", 1)[0]
    assert p99.count("M") == 2  # the gap of three steps splits the line


def test_slowest_routes():
    page = status_page(full_summary(), now=NOW)
    routes = page.split('id="routes"', 1)[1].split("</table>", 1)[0]
    assert routes.index("/items/{item_id}") < routes.index("/orders")
    assert '<td class="num">12.0%</td>' in routes
    summary = full_summary()
    summary["traffic"]["slowest_routes"] = []
    assert "No requests in the last 5 minutes." in status_page(summary, now=NOW)


@pytest.mark.parametrize("absent", ["traffic", "alerts", "refresh_seconds"])
def test_a_summary_without_the_monitor_keys_still_renders(absent):
    summary = full_summary()
    del summary[absent]
    page = status_page(summary, now=NOW)
    assert 'id="checks"' in page
    assert_inert(page)


def test_a_summary_from_before_the_monitor_says_there_is_no_traffic_data():
    page = status_page(legacy_summary(), now=NOW)
    assert "No traffic data" in page
    assert "No alert data" in page
    assert '<meta http-equiv="refresh" content="10">' in page
    assert "<td>fallback: memory</td>" in page
    assert "59% of 512 MiB" in page
    assert "<svg" not in page


def test_a_monitor_without_samples_yet():
    summary = full_summary()
    summary["traffic"] = {"workers": 1, "windows": {}, "series": {}, "slowest_routes": []}
    page = status_page(summary, now=NOW)
    assert "1 worker running;" in page
    assert "No series yet." in page
    assert page.count('<svg class="spark"') == 4  # empty charts, baselines only
    assert "<path" not in page


def test_memory_without_a_limit_and_breakers_without_numbers():
    summary = legacy_summary()
    summary["memory"] = {"rss_bytes": 64 * 1024 * 1024, "limit_bytes": None, "used_ratio": None}
    summary["breakers"] = [{"name": "x", "state": "open", "retry_after": None}]
    summary["version"] = None
    page = status_page(summary, now=NOW)
    assert "64 MiB resident (no limit set)" in page
    assert f"<td>{DASH}s</td>" in page
    assert "None" not in page


SCRIPT = "<script>alert(1)</script>"


def test_strings_of_the_summary_render_inert():
    summary = full_summary()
    summary["service"] = SCRIPT
    summary["traffic"]["slowest_routes"][0]["route"] = SCRIPT
    summary["checks"][SCRIPT] = {
        "status": '"><b>',
        "output": f"<img src=x onerror=alert(1)>{SCRIPT}",
    }
    summary["breakers"][0]["name"] = SCRIPT
    alert = summary["alerts"]["active"][0]
    alert.update(name=SCRIPT, subject=SCRIPT, message=SCRIPT, severity='" onclick="x', since=SCRIPT)
    summary["alerts"]["resolved"][0]["resolved_at"] = '"><script>'
    page = status_page(summary, now=NOW)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in page
    assert '<tr class="unknown"><td class="severity">&quot; onclick=&quot;x</td>' in page
    assert_inert(page)


# --- property: any summary the contract allows renders, and its strings stay text ----------

MARK = "\ue000"  # stands for '<' in the control rendering; never generated
texts = st.text(st.characters(blacklist_characters=MARK, blacklist_categories=("Cs",)), max_size=12)
numbers = (
    st.none()
    | st.integers(0, 10**12)
    | st.floats(min_value=0)
    | st.sampled_from([math.nan, math.inf])
)
series = st.lists(st.none() | st.floats(min_value=0, max_value=1e12), max_size=70)
# Naive datetimes, printed with a Z: the contract's timestamps are UTC.
iso = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _optional(required, **optional):
    return st.fixed_dictionaries(required, optional=optional)


window = _optional({}, **dict.fromkeys((
    "seconds", "requests", "requests_per_s", "errors", "error_rate", "rate_limited",
    "p50_ms", "p95_ms", "p99_ms"), numbers))  # fmt: skip
route = _optional({"route": texts}, **dict.fromkeys((
    "requests", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms"), numbers))  # fmt: skip
alert_keys = {
    "name": st.sampled_from(["error_rate", "latency_p99", "memory_high", "memory_critical",
                             "breaker_open", "health_failing"]) | texts,
    "subject": st.none() | texts,
    "severity": st.sampled_from(["warning", "critical"]) | texts,
    "since": iso | texts,
    "message": texts,
}  # fmt: skip
summaries = _optional(
    {
        "service": texts, "status": st.sampled_from(["pass", "warn", "fail"]) | texts,
        "state": texts, "uptime_seconds": numbers, "started_at": iso | texts,
        "pid": st.integers(1, 2**22), "version": st.none() | texts,
        "degraded": st.lists(texts, max_size=2), "failing": st.lists(texts, max_size=2),
        "checks": st.dictionaries(texts, st.fixed_dictionaries(
            {"status": texts, "output": st.none() | texts}), max_size=3),
        "breakers": st.lists(st.fixed_dictionaries(
            {"name": texts, "state": texts, "retry_after": numbers}), max_size=3),
        "memory": st.fixed_dictionaries(
            {"rss_bytes": numbers, "limit_bytes": numbers, "used_ratio": numbers}),
    },
    refresh_seconds=numbers,
    traffic=st.none() | _optional({}, workers=numbers,
        windows=_optional({}, **{"1m": window, "5m": window, "15m": window}),
        series=_optional({}, step_seconds=numbers, requests_per_s=series, error_rate=series,
                         p99_ms=series, memory_ratio=series),
        slowest_routes=st.lists(route, max_size=5)),
    alerts=st.none() | _optional({},
        active=st.lists(st.fixed_dictionaries(
            alert_keys, optional={"value": numbers, "threshold": numbers}), max_size=3),
        resolved=st.lists(st.fixed_dictionaries(
            {**alert_keys, "resolved_at": iso | texts}), max_size=3)),
)  # fmt: skip


def _marked(value):
    """``value`` with every '<' of its strings (dict keys included) replaced by MARK."""
    if isinstance(value, str):
        return value.replace("<", MARK)
    if isinstance(value, dict):
        return {_marked(k): _marked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_marked(v) for v in value]
    return value


@settings(max_examples=300)
@given(summaries, st.floats(min_value=0, max_value=4e9))
def test_any_contract_summary_renders_and_its_strings_add_no_markup(summary, now):
    page = status_page(copy.deepcopy(summary), now=now)
    assert_inert(page)
    # The same summary with no '<' in any string has exactly as many '<': none came from one.
    assert page.count("<") == status_page(_marked(summary), now=now).count("<")
