"""One content-negotiation rule for fender's endpoints (RFC 9110 qualities, never 406)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fender._negotiate import preferred

METRICS = ("text/plain", "application/openmetrics-text")
STATUS = ("application/json", "text/html")
PROMETHEUS = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "offers", "expected"),
    [
        (None, METRICS, "text/plain"),
        ("", METRICS, "text/plain"),
        (PROMETHEUS, METRICS, "application/openmetrics-text"),
        ("application/openmetrics-text;q=0, text/plain", METRICS, "text/plain"),
        ("application/openmetrics-text; version=1.0.0", METRICS, "application/openmetrics-text"),
        ("*/*", METRICS, "text/plain"),
        ("*/*;q=0", METRICS, "text/plain"),  # nothing acceptable: the default, never a 406
        (BROWSER, STATUS, "text/html"),
        ("text/html;q=0, application/json", STATUS, "application/json"),
        ("text/*", STATUS, "text/html"),
        ("application/json, text/html;q=0.5", STATUS, "application/json"),
        ("TEXT/HTML", STATUS, "text/html"),
        ("text/html;q=nan", STATUS, "application/json"),
        ("text/html;q=abc", STATUS, "application/json"),
    ],
)
def test_preferred(accept, offers, expected):
    assert preferred(accept, offers) == expected


def test_no_offers_is_a_programming_error():
    with pytest.raises(ValueError, match="at least one offer"):
        preferred("text/html", ())


@given(st.text(max_size=300))
def test_any_header_gives_one_of_the_offers(accept):
    assert preferred(accept, STATUS) in STATUS
