from __future__ import annotations

import os
import subprocess
import sys

import prometheus_client
import pytest
from prometheus_client import REGISTRY

from fender.errors import ConfigurationError
from fender.observability import _metrics as metrics


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


def _samples(name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (
            s.name.removeprefix(name),
            tuple(sorted((k, v) for k, v in s.labels.items() if k != "which")),
        ): s.value
        for family in REGISTRY.collect()
        if family.name == name
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_buffered_series_count_what_the_metrics_own_updates_count():
    plain = metrics.histogram("test_plain_hist", "Plain.", ("route",))
    buffered = metrics.Buffered(metrics.histogram("test_buffered_hist", "Buffered.", ("route",)))
    # on a bound, just over it, zero, past the last bound, and many at once
    values = [0.005, 0.0051, 0.0, 0.1, 10.0, 11.0, 0.3, *[0.02] * 50]
    for value in values:
        plain.labels("/a").observe(value)
        buffered.labels("/a").observe(value)
    assert _samples("test_buffered_hist") == _samples("test_plain_hist")
    assert REGISTRY.get_sample_value("test_buffered_hist_count", {"route": "/a"}) == len(values)
    buffered.labels("/a").observe(0.02)  # counted since the last collection, not twice
    assert REGISTRY.get_sample_value("test_buffered_hist_count", {"route": "/a"}) == len(values) + 1


def test_buffered_gauges_and_counters_and_one_buffer_per_series():
    gauge = metrics.gauge("test_buffered_gauge", "In flight.", ("method",))
    first, second = metrics.Buffered(gauge), metrics.Buffered(gauge)
    assert first.labels("GET") is second.labels("GET")  # two observers, one series
    for _ in range(3):
        first.labels("GET").inc()
    second.labels("GET").dec()
    assert REGISTRY.get_sample_value("test_buffered_gauge", {"method": "GET"}) == 2
    counter = metrics.Buffered(metrics.counter("test_buffered_counter", "Counted.", ("kind",)))
    counter.labels("a").inc()
    counter.labels("a").inc(2.5)
    assert REGISTRY.get_sample_value("test_buffered_counter_total", {"kind": "a"}) == 3.5
    guard = metrics.LabelGuard(counter, max_series=1)
    guard.child("b").inc()
    guard.child("c").inc()
    assert REGISTRY.get_sample_value("test_buffered_counter_total", {"kind": "_overflow"}) == 1


def test_only_counters_gauges_and_histograms_are_buffered():
    summary = prometheus_client.Summary("test_summary_not_buffered", "A summary.")
    with pytest.raises(ConfigurationError, match="counter, gauge or histogram"):
        metrics.Buffered(summary)


WORKER = """
import os, sys, time
from prometheus_client.multiprocess import MultiProcessCollector
from fender.observability import _metrics as metrics
hist = metrics.Buffered(metrics.histogram("test_mp_hist", "Buffered across processes.", ("w",)))


def folded_here():
    # What this process's own file holds, read without folding (a scrape would fold first).
    path = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], f"histogram_{os.getpid()}.db")
    if not os.path.exists(path):
        return 0
    samples = [s for m in MultiProcessCollector.merge([path]) for s in m.samples]
    return sum(s.value for s in samples if s.name == "test_mp_hist_count")


def wait_folded(count):
    # The folding thread, not the exit, must bring this process's count to ``count``: the
    # caller leaves with os._exit (no atexit fold).
    deadline = time.monotonic() + 60
    while folded_here() < count:
        if time.monotonic() > deadline:
            os._exit(3)
        time.sleep(0.02)


for _ in range(int(sys.argv[1])):
    hist.labels("x").observe(0.01)
if sys.argv[2] == "wait":
    wait_folded(int(sys.argv[1]))  # the folding thread, not the exit
    os._exit(0)  # no atexit
if sys.argv[2] == "fork":  # a series built and cached before the fork (gunicorn --preload)
    series = hist.labels("x")
    pid = os.fork()  # the parent's counts are still pending here
    if pid == 0:
        for _ in range(int(sys.argv[1])):
            series.observe(0.01)
        wait_folded(int(sys.argv[1]))  # the child's own folding thread
        os._exit(0)
    wait_folded(int(sys.argv[1]))  # the parent's thread folds its own meanwhile
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status))
if sys.argv[2] == "scrape":
    body, _ = metrics.exposition()
    sys.stdout.write(body.decode())
"""


def test_buffered_series_reach_other_processes_in_multiprocess_mode(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    env.pop("SERVER_SOFTWARE", None)

    def worker(count: int, how: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", WORKER, str(count), how],
            env=env, capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        return done.stdout

    worker(3, "exit")  # folded at exit
    worker(4, "wait")  # folded by the thread while alive
    # 6 in the parent before the fork (its thread folds them while it waits) and 6 in the
    # child: each counted once, the child folding its own
    worker(6, "fork")
    body = worker(5, "scrape")  # the scraping process folds its own first
    assert 'test_mp_hist_count{w="x"} 24.0' in body
    assert 'test_mp_hist_bucket{le="0.01",w="x"} 24.0' in body


def test_a_file_that_vanishes_during_a_scrape_is_listed_again(monkeypatch):
    """A worker's file removed between the listing and the read (it died): no 500."""
    import prometheus_client

    real = prometheus_client.generate_latest
    calls = []

    def flaky(registry):
        calls.append(registry)
        if len(calls) == 1:
            raise FileNotFoundError("/tmp/prom/gauge_livesum_123.db")
        return real(registry)

    monkeypatch.setattr(prometheus_client, "generate_latest", flaky)
    body, content_type = metrics.exposition(None)
    assert len(calls) == 2
    assert content_type.startswith("text/plain")
    assert isinstance(body, bytes)
