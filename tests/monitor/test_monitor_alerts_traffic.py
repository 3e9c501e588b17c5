"""Synthetic traffic on a manual clock trips and resolves each alert at the right time.

Each test drives one :class:`~fender.monitor.Monitor` second by second: the requests of a
second are recorded, the clock moves on, the monitor ticks (as its thread does once a second).
Every transition is said once: one log event and the ``fender_alert_active`` gauge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from fender.monitor import Monitor
from fender.settings import load_settings
from fender.testing import ManualClock, capture_logs

START = 1_800_000_000.0
SHARE = 100 * 2**20


class Harness:
    def __init__(self, **env: str) -> None:
        settings = load_settings({"FENDER_ENV": "development", **env}, env_file=None)
        self.clock = ManualClock(START)
        self.rss = SHARE // 2
        self.breakers: list[str] = []
        self.streaks: dict[str, int] = {}
        self.monitor = Monitor(
            settings,
            directory=lambda: None,
            share_bytes=SHARE,
            open_breakers=lambda: self.breakers,
            streaks=lambda: self.streaks,
            clock=self.clock,
            rss=lambda: self.rss,
        )
        self.monitor.open()
        self.log: list[tuple[float, str, str | None]] = []  # (time, kind:name, subject)

    def run(
        self,
        seconds: int,
        *,
        per_second: int = 0,
        errors: int = 0,
        slow: int = 0,
        slow_seconds: float = 0.6,
    ) -> None:
        for _ in range(seconds):
            for n in range(per_second):
                status = 500 if n < errors else 200
                duration = slow_seconds if n >= per_second - slow else 0.02
                self.monitor.record("/items/{id}", status, duration)
            self.clock.advance(1)
            for t in self.monitor.tick():
                self.log.append((self.clock() - START, f"{t.kind}:{t.alert.name}", t.alert.subject))

    def times(self, name: str) -> list[tuple[float, str]]:
        return [(at, kind.split(":")[0]) for at, kind, _ in self.log if kind.endswith(":" + name)]


def active(alert: str, subject: str = "", severity: str = "critical") -> float | None:
    return REGISTRY.get_sample_value(
        "fender_alert_active", {"alert": alert, "subject": subject, "severity": severity}
    )


def test_error_rate_fires_after_a_minute_above_5_percent_and_resolves_when_below():
    h = Harness()
    h.run(70, per_second=100, errors=10)  # 10% 5xx from the first second
    # across at the first tick (1), then for 60 s
    assert h.times("error_rate") == [(61.0, "firing")]
    h.run(40, per_second=100)
    # Clean from second 70: at tick T the window holds seconds T-59..T-1, the errors of
    # 70-(T-59) of them; 10% of those is at most 5% of the whole from T = 100.
    assert h.times("error_rate")[-1] == (100.0, "resolved")


def test_a_quiet_minute_does_not_alert_on_one_failed_request():
    h = Harness()
    h.run(120, per_second=0)
    h.monitor.record("/items/{id}", 500, 0.01)
    h.run(90)
    assert h.times("error_rate") == []


def test_p99_fires_after_two_minutes_above_500_ms():
    h = Harness()
    h.run(10, per_second=100)
    h.run(150, per_second=100, slow=3)  # 3% at 600 ms: the p99 is 600 ms
    # The window's slow share passes 1% once 3k > 10 + k (k seconds of slow traffic after
    # 10 clean ones): across at 16, firing 120 s later.
    assert h.times("latency_p99") == [(136.0, "firing")]
    summary = h.monitor.summary()
    (alert,) = [a for a in summary["alerts"]["active"] if a["name"] == "latency_p99"]
    assert alert["severity"] == "warning"
    assert 550 <= alert["value"] <= 660
    h.run(70, per_second=100)
    assert [kind for _, kind in h.times("latency_p99")] == ["firing", "resolved"]


@pytest.mark.parametrize(
    ("latency", "fires"),
    [(0.450, False), (0.495, False), (0.505, True), (0.520, True)],
)
def test_p99_near_the_threshold_is_judged_exactly_not_by_its_bin(latency, fires):
    # 430-512 ms is one bin: the bins alone would read a constant 450 ms as up to 511 ms.
    h = Harness(FENDER_ALERT_P99_FOR="0")
    h.run(5, per_second=50, slow=50, slow_seconds=latency)
    assert (h.times("latency_p99") != []) is fires
    p99 = h.monitor.summary()["traffic"]["windows"]["1m"]["p99_ms"]
    assert (p99 > 500) is fires


def test_status_reads_the_alerts_while_the_tick_changes_them():
    # Requests read /status in their threads while the monitor's thread evaluates.
    import sys
    import threading

    h = Harness(FENDER_ALERT_BREAKER_OPEN_FOR="0")
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                h.monitor.summary()
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(300):  # 50 breakers opening and closing: the book changes each tick
            h.breakers = [f"b{i}" for i in range(50) if (i + n) % 2]
            h.run(1)
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(interval)
    assert failures == []


def test_memory_warns_above_75_and_is_critical_above_85_percent():
    h = Harness(FENDER_ALERT_MEMORY_FOR="30")
    h.rss = int(SHARE * 0.80)
    h.run(40)
    assert h.times("memory_high") == [(31.0, "firing")]
    assert h.times("memory_critical") == []
    h.rss = int(SHARE * 0.90)
    h.run(31)
    assert h.times("memory_critical") == [(71.0, "firing")]
    h.rss = int(SHARE * 0.50)
    h.run(1)
    assert h.times("memory_high")[-1] == (72.0, "resolved")
    assert h.times("memory_critical")[-1] == (72.0, "resolved")


def test_a_breaker_open_for_a_minute_fires_with_its_name():
    h = Harness()
    h.breakers = ["redis"]
    h.run(59)
    assert h.times("breaker_open") == []
    h.run(2)
    assert h.times("breaker_open") == [(61.0, "firing")]  # seen open at the first tick
    assert active("breaker_open", "redis") == 1.0
    h.breakers = []
    h.run(1)
    assert h.times("breaker_open")[-1] == (62.0, "resolved")
    assert active("breaker_open", "redis") == 0.0


def test_health_failing_three_runs_in_a_row_fires_at_once():
    h = Harness()
    h.streaks = {"database": 2}
    h.run(5)
    assert h.times("health_failing") == []
    h.streaks = {"database": 3}
    h.run(1)
    assert h.times("health_failing") == [(6.0, "firing")]
    h.streaks = {"database": 0}
    h.run(1)
    assert h.times("health_failing")[-1] == (7.0, "resolved")


def test_each_transition_is_one_log_event_and_the_thresholds_are_settings():
    with capture_logs() as logs:
        h = Harness(FENDER_ALERT_ERROR_RATE="0.5", FENDER_ALERT_ERROR_RATE_FOR="0")
        h.run(10, per_second=10, errors=4)  # 40%: under the 50% this service allows
        assert h.times("error_rate") == []
        h.run(20, per_second=10, errors=9)
        h.run(120, per_second=10)
    (fired,) = logs.named("alert_firing")
    (resolved,) = logs.named("alert_resolved")
    assert fired["alert"] == resolved["alert"] == "error_rate"
    assert fired["level"] == "error"  # critical
    assert fired["threshold"] == 0.5
    assert "of requests over the last minute" in fired["message"]


@pytest.mark.parametrize("kind", ["error_rate", "latency_p99"])
def test_status_shows_the_active_alert_with_since_and_then_as_resolved(kind):
    h = Harness(FENDER_ALERT_ERROR_RATE_FOR="0", FENDER_ALERT_P99_FOR="0")
    h.run(5, per_second=50, errors=10 if kind == "error_rate" else 0, slow=10)
    summary = h.monitor.summary()
    (alert,) = [a for a in summary["alerts"]["active"] if a["name"] == kind]
    assert alert["since"] == "2027-01-15T08:00:01Z"
    h.run(90, per_second=50)
    summary = h.monitor.summary()
    assert [a["name"] for a in summary["alerts"]["active"]] == []
    (gone,) = [a for a in summary["alerts"]["resolved"] if a["name"] == kind]
    assert gone["resolved_at"] > gone["since"]


def test_the_summary_windows_series_and_slowest_routes():
    h = Harness()
    monitor: Any = h.monitor
    record: Callable[..., None] = monitor.record
    for _ in range(60):
        for _ in range(10):
            record("/fast", 200, 0.005)
        record("/slow", 500, 0.8)
        h.clock.advance(1)
    traffic = monitor.summary()["traffic"]
    one = traffic["windows"]["1m"]
    assert one["requests"] == 660 - 11  # the window's first second is 60 s ago: out
    assert one["error_rate"] == pytest.approx(1 / 11, abs=1e-3)
    assert one["requests_per_s"] == pytest.approx(649 / 60, abs=1e-3)
    assert traffic["windows"]["15m"]["requests"] == 660
    series = traffic["series"]
    assert len(series["requests_per_s"]) == 60
    assert series["requests_per_s"][-1] == pytest.approx(11 * 14 / 15, abs=1e-3)
    assert series["error_rate"][0] is None  # no traffic 15 minutes ago
    slowest = traffic["slowest_routes"]
    assert [r["route"] for r in slowest] == ["/slow", "/fast"]
    assert 700 <= slowest[0]["p99_ms"] <= 900
    assert traffic["workers"] == 1
