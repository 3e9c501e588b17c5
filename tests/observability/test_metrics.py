from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from fender.errors import ConfigurationError
from fender.observability import metrics


def test_declaring_twice_returns_the_same_metric():
    first = metrics.counter("test_declared_once", "A test counter.", ("kind",))
    assert metrics.counter("test_declared_once", "A test counter.", ("kind",)) is first


def test_conflicting_declarations_are_refused():
    metrics.counter("test_conflict", "A test counter.", ("kind",))
    with pytest.raises(ConfigurationError, match="test_conflict"):
        metrics.gauge("test_conflict", "Now a gauge?", ("kind",))
    with pytest.raises(ConfigurationError):
        metrics.counter("test_conflict", "Other labels.", ("other",))


def test_only_live_gauge_modes():
    with pytest.raises(ConfigurationError, match="multiprocess_mode"):
        metrics.gauge("test_gauge_mode", "A gauge.", multiprocess_mode="all")


def test_label_guard_caps_series():
    counter = metrics.counter("test_guarded", "A guarded counter.", ("route", "method"))
    guard = metrics.LabelGuard(counter, max_series=3)
    for i in range(10):
        guard.child(f"/path/{i}", "GET").inc()
    assert len(guard) == 4  # 3 real series and the overflow one
    assert guard.dropped == 7
    assert (
        REGISTRY.get_sample_value("test_guarded_total", {"route": "_overflow", "method": "GET"})
        == 7
    )
    assert guard.child("/path/0", "GET") is guard.child("/path/0", "GET")


def test_build_info():
    metrics.set_build_info("1.2.3", "abc123")
    labels = REGISTRY.get_sample_value
    body, content_type = metrics.exposition()
    assert b'version="1.2.3"' in body
    assert b'commit="abc123"' in body
    assert content_type.startswith("text/plain")
    assert labels is not None


def test_single_process_exposition_has_process_metrics():
    body, _ = metrics.exposition()
    assert b"process_resident_memory_bytes" in body or b"python_info" in body


def test_openmetrics_negotiation():
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
