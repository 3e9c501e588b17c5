from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from fender._clock import ManualClock
from fender.errors import CallNotPermitted
from fender.observability._breakers import instrument
from fender.resilience import BreakerConfig, BreakerRegistry


def value(metric, /, **labels):
    return REGISTRY.get_sample_value(metric, labels)


def test_state_calls_and_transitions_counted_once():
    clock = ManualClock()
    registry = BreakerRegistry(
        BreakerConfig(failure_threshold=2, recovery_timeout=5.0, recovery_jitter=0.0,
                      success_threshold=1),
        clock=clock,
    )  # fmt: skip
    before = registry.get_or_create("metrics-a")
    instrument(registry)
    instrument(registry)  # idempotent
    assert value("circuit_breaker_state", name="metrics-a") == 0

    @before
    def fail():
        raise ConnectionError

    for _ in range(2):
        with pytest.raises(ConnectionError):
            fail()
    assert value("circuit_breaker_state", name="metrics-a") == 2
    assert value("circuit_breaker_calls_total", name="metrics-a", outcome="failure") == 2
    transitions = {"name": "metrics-a", "from": "closed", "to": "open"}
    assert REGISTRY.get_sample_value("circuit_breaker_transitions_total", transitions) == 1
    with pytest.raises(CallNotPermitted):
        fail()
    assert value("circuit_breaker_calls_total", name="metrics-a", outcome="rejected") == 1

    clock.advance(6.0)
    assert before.call(lambda: "ok") == "ok"
    assert value("circuit_breaker_state", name="metrics-a") == 0
    half = {"name": "metrics-a", "from": "open", "to": "half_open"}
    assert REGISTRY.get_sample_value("circuit_breaker_transitions_total", half) == 1
    assert value("circuit_breaker_calls_total", name="metrics-a", outcome="success") == 1


def test_breakers_created_later_are_instrumented():
    registry = BreakerRegistry(BreakerConfig(failure_threshold=1), clock=ManualClock())
    instrument(registry)
    later = registry.get_or_create("metrics-later")
    assert later.call(lambda: 1) == 1
    assert value("circuit_breaker_state", name="metrics-later") == 0
    later.force_open()
    assert value("circuit_breaker_state", name="metrics-later") == 2
    later.reset()
    assert value("circuit_breaker_state", name="metrics-later") == 0
    assert value("circuit_breaker_calls_total", name="metrics-later", outcome="success") == 1


def test_state_gauge_is_livemax_under_multiprocess():
    from fender.observability import _metrics as metrics

    gauge = metrics.gauge(
        "circuit_breaker_state",
        "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        ("name",),
        multiprocess_mode="livemax",
    )
    assert gauge._multiprocess_mode == "livemax"
