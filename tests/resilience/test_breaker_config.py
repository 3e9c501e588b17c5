"""BreakerConfig validation, the sliding windows, the registry and the module examples."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fender.resilience
from fender._clock import ManualClock
from fender.errors import ConfigurationError
from fender.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    SlidingWindowType,
    _breaker,
    _config,
    _registry,
    _retry,
)
from fender.resilience._window import CountWindow, TimeWindow


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_threshold", 0),
        ("failure_threshold", True),
        ("failure_threshold", 2.5),
        ("failure_rate_threshold", 0.0),
        ("failure_rate_threshold", 101.0),
        ("failure_rate_threshold", float("nan")),
        ("slow_call_rate_threshold", -1.0),
        ("slow_call_duration_threshold", 0.0),
        ("sliding_window_type", "time"),
        ("sliding_window_size", 0),
        ("minimum_number_of_calls", 0),
        ("recovery_timeout", 0),
        ("recovery_timeout", float("inf")),
        ("recovery_timeout_multiplier", 0.5),
        ("max_recovery_timeout", 1.0),
        ("recovery_jitter", 1.0),
        ("recovery_jitter", -0.1),
        ("permitted_calls_in_half_open", 0),
        ("success_threshold", 0),
        ("half_open_slot_timeout", -1.0),
        ("record_exceptions", ConnectionError),
        ("ignore_exceptions", (int,)),
        ("failure_predicate", "not callable"),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ConfigurationError) as caught:
        BreakerConfig(**{field: value})
    assert caught.value.field == field
    assert field in str(caught.value)


def test_config_needs_a_trip_rule():
    with pytest.raises(ConfigurationError) as caught:
        BreakerConfig(
            failure_threshold=None, failure_rate_threshold=None, slow_call_duration_threshold=None
        )
    assert caught.value.field == "failure_threshold"


def test_config_is_frozen_and_keyword_only():
    config = BreakerConfig()
    with pytest.raises(AttributeError):
        config.failure_threshold = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        BreakerConfig(5)  # type: ignore[misc]


def test_documented_defaults():
    config = BreakerConfig()
    assert (config.failure_threshold, config.failure_rate_threshold) == (5, 50.0)
    assert config.sliding_window_type is SlidingWindowType.TIME_BASED
    assert (config.sliding_window_size, config.minimum_number_of_calls) == (10, 20)
    assert (config.slow_call_rate_threshold, config.recovery_timeout) == (100.0, 60.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"name": ""}, "name"), ({"config": {}}, "config"), ({"fallback": 3}, "fallback")],
)
def test_breaker_arguments_are_validated(kwargs, field):
    arguments = {"name": "svc", **kwargs}
    with pytest.raises(ConfigurationError) as caught:
        CircuitBreaker(**arguments)
    assert caught.value.field == field


outcomes = st.lists(st.tuples(st.booleans(), st.booleans()), max_size=60)


@given(size=st.integers(1, 10), recorded=outcomes)
def test_count_window_totals_match_the_last_calls(size, recorded):
    window = CountWindow(size)
    for failed, slow in recorded:
        window.record(0.0, failed, slow)
    last = recorded[-size:]
    assert (window.calls, window.failures, window.slow) == (
        len(last),
        sum(f for f, _ in last),
        sum(s for _, s in last),
    )
    window.reset()
    assert (window.calls, window.failures, window.slow) == (0, 0, 0)


@given(
    size=st.integers(1, 10),
    recorded=st.lists(
        st.tuples(st.floats(0, 4, allow_nan=False), st.booleans(), st.booleans()), max_size=60
    ),
)
def test_time_window_totals_match_the_last_seconds(size, recorded):
    window, now, history = TimeWindow(size), 1000.0, []
    for step, failed, slow in recorded:
        now += step
        window.record(now, failed, slow)
        history.append((now, failed, slow))
        live = [h for h in history if int(h[0]) > int(now) - size]
        assert (window.calls, window.failures, window.slow) == (
            len(live),
            sum(h[1] for h in live),
            sum(h[2] for h in live),
        )
    window.refresh(now + size)
    assert window.calls == 0


def test_time_window_counts_a_late_reader_in_the_newest_second():
    window = TimeWindow(10)
    window.record(1005.2, False, False)
    window.record(1004.9, True, False)  # read the clock before the roll, recorded after it
    assert (window.calls, window.failures) == (2, 1)


def test_registry_get_or_create_iterates_and_checks_config():
    clock = ManualClock()
    reg = BreakerRegistry(BreakerConfig(failure_threshold=1), clock=clock, rng=lambda: 0.5)
    redis = reg.get_or_create("redis")
    assert reg.get_or_create("redis") is redis
    assert reg.get_or_create("redis", BreakerConfig(failure_threshold=1)) is redis
    with pytest.raises(ConfigurationError) as caught:
        reg.get_or_create("redis", BreakerConfig(failure_threshold=2))
    assert caught.value.field == "config"
    db = reg.get_or_create("db", BreakerConfig(failure_threshold=3), fallback=lambda _exc: None)
    assert [b.name for b in reg] == ["redis", "db"]
    assert "db" in reg
    assert len(reg) == 2
    assert reg.get("nope") is None
    assert reg.get("db") is db
    assert [s.name for s in reg.snapshots()] == ["redis", "db"]


def test_registry_listeners_reach_present_and_future_breakers():
    reg = BreakerRegistry(BreakerConfig(failure_threshold=1), clock=ManualClock())
    first = reg.get_or_create("first")
    transitions, calls = [], []
    reg.add_transition_listener(transitions.append)
    reg.add_call_listener(calls.append)
    second = reg.get_or_create("second")
    for item in (first, second):
        item.on_error(ConnectionError())
    assert [(t.name, t.to_state) for t in transitions] == [
        ("first", BreakerState.OPEN),
        ("second", BreakerState.OPEN),
    ]
    assert [c.name for c in calls] == ["first", "second"]


def test_default_registry_and_public_names():
    assert isinstance(fender.resilience.default_registry, BreakerRegistry)
    assert len(set(fender.resilience.__all__)) == len(fender.resilience.__all__)
    for name in fender.resilience.__all__:
        assert hasattr(fender.resilience, name)


@pytest.mark.parametrize("module", [_breaker, _config, _registry, _retry], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0
    assert results.failed == 0
