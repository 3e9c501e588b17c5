"""The per-call shortcuts (skipped rate checks, lock-free rejections) answer as the rules do."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import pickle
import types

import pytest

from fender._clock import ManualClock
from fender.errors import CallNotPermitted
from fender.resilience import BreakerConfig, BreakerState, CircuitBreaker, SlidingWindowType

RATE = BreakerConfig(
    failure_threshold=None,
    failure_rate_threshold=50.0,
    slow_call_duration_threshold=None,
    sliding_window_type=SlidingWindowType.TIME_BASED,
    sliding_window_size=10,
    minimum_number_of_calls=4,
    recovery_timeout=30.0,
    recovery_jitter=0.0,
)


def make(config: BreakerConfig = RATE, **kwargs):
    clock = ManualClock(1000.0)
    return CircuitBreaker("svc", config, clock=clock, **kwargs), clock


# With the permit handed back, as the shells do: a report without one takes the slow path.
def ok(breaker: CircuitBreaker) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_success(0.0, permit)


def fail(breaker: CircuitBreaker) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_error(ConnectionError(), 0.0, permit)


@pytest.mark.parametrize("look_first", [False, True], ids=["record-rolls", "snapshot-rolls"])
def test_a_success_trips_once_older_successes_expire(look_first):
    breaker, clock = make()
    for _ in range(4):
        ok(breaker)
    clock.set(1005.0)
    for _ in range(3):
        fail(breaker)
    ok(breaker)
    assert breaker.state is BreakerState.CLOSED  # 3 failed of 8
    clock.set(1010.5)  # second 1000 has slid out: 3 failed of 4
    if look_first:  # the snapshot drops the expired second, so the success itself rolls nothing
        assert breaker.snapshot().failure_rate == 75.0
    assert breaker.state is BreakerState.CLOSED
    ok(breaker)  # 3 failed of 5
    assert breaker.state is BreakerState.OPEN


def test_a_success_that_completes_the_minimum_trips():
    config = dataclasses.replace(
        RATE, sliding_window_type=SlidingWindowType.COUNT_BASED, sliding_window_size=4
    )
    breaker, _ = make(config)
    for _ in range(3):
        fail(breaker)
    assert breaker.state is BreakerState.CLOSED  # 3 calls, short of the minimum of 4
    ok(breaker)
    assert breaker.state is BreakerState.OPEN


def test_successes_past_the_minimum_never_trip_and_keep_the_totals():
    breaker, clock = make(dataclasses.replace(RATE, minimum_number_of_calls=2))
    ok(breaker)
    ok(breaker)
    fail(breaker)
    for _ in range(50):
        ok(breaker)
        clock.advance(0.1)
    snapshot = breaker.snapshot()
    assert breaker.state is BreakerState.CLOSED
    assert (snapshot.calls, snapshot.failed_calls) == (53, 1)


def test_a_manual_state_out_of_open_forgets_the_open_deadline():
    captured = []
    breaker, clock = make(fallback=captured.append)
    breaker.force_open()
    breaker.transition_to_closed()
    for _ in range(4):
        fail(breaker)
    assert breaker.state is BreakerState.OPEN
    clock.advance(5.0)
    breaker.call(lambda: None)
    breaker.force_open()
    breaker.call(lambda: None)
    assert [exc.retry_after for exc in captured] == [25.0, 30.0]  # the deadline, then the hint
    breaker.disable()
    assert breaker.call(lambda: "admitted") == "admitted"
    breaker.reset()
    assert breaker.call(lambda: "admitted") == "admitted"


def test_decorated_rejections_reach_call_listeners_sync_and_async():
    breaker, _ = make(fallback=lambda _exc: "fallback")
    events = []
    breaker.add_call_listener(events.append)
    breaker.force_open()

    async def fetch_async():
        return "value"

    assert breaker.call(lambda: "value") == "fallback"
    assert asyncio.run(breaker.call_async(fetch_async)) == "fallback"
    breaker.reset()
    for _ in range(4):
        fail(breaker)
    events.clear()
    assert breaker.call(lambda: "value") == "fallback"
    assert asyncio.run(breaker.call_async(fetch_async)) == "fallback"
    assert [event.outcome for event in events] == ["rejected", "rejected"]


SHAPES = [
    pytest.param((), {}, id="none"),
    pytest.param((1,), {}, id="args"),
    pytest.param((), {"b": 2}, id="kwargs"),
    pytest.param((1, 2), {"c": 3}, id="both"),
]


@pytest.mark.parametrize(("args", "kwargs"), SHAPES)
def test_arguments_reach_the_call_and_the_fallback_in_every_shape(args, kwargs):
    seen = []

    def fallback(exc, *a, **k):
        seen.append((type(exc).__name__, a, k))
        return "fallback"

    breaker, _ = make(fallback=fallback)

    def echo(*a, **k):
        return a, k

    async def echo_async(*a, **k):
        return a, k

    def broken(*_a, **_k):
        raise ConnectionError

    async def broken_async(*_a, **_k):
        raise ConnectionError

    assert breaker(echo)(*args, **kwargs) == (args, kwargs)
    assert asyncio.run(breaker(echo_async)(*args, **kwargs)) == (args, kwargs)
    assert breaker(broken)(*args, **kwargs) == "fallback"
    assert asyncio.run(breaker(broken_async)(*args, **kwargs)) == "fallback"
    breaker.force_open()
    assert breaker(echo)(*args, **kwargs) == "fallback"
    assert asyncio.run(breaker(echo_async)(*args, **kwargs)) == "fallback"
    assert seen == [
        ("ConnectionError", args, kwargs),
        ("ConnectionError", args, kwargs),
        ("_Rejection", args, kwargs),
        ("_Rejection", args, kwargs),
    ]


class Ready:
    """An awaitable that is neither a coroutine nor a generator."""

    def __await__(self):
        return "ready"
        yield  # a generator function: the value above is what `await` returns


@types.coroutine
def legacy_coroutine(_exc):
    yield  # one turn of the event loop, as a generator-based coroutine may take
    return "legacy"


def plain_generator(_exc):
    yield "not awaited"


class Record(dict):
    """A value whose ``__getattr__`` raises KeyError: it must not be probed for ``__await__``."""

    __getattr__ = dict.__getitem__


@pytest.mark.parametrize(
    ("fallback", "expected"),
    [
        pytest.param(lambda _exc: "plain", "plain", id="value"),
        pytest.param(lambda _exc: None, None, id="none"),
        pytest.param(lambda _exc: Record(a=1), Record(a=1), id="getattr-raises-keyerror"),
        pytest.param(lambda _exc: b"bytes", b"bytes", id="bytes"),
        pytest.param(lambda _exc: Ready(), "ready", id="awaitable-object"),
        pytest.param(legacy_coroutine, "legacy", id="types-coroutine"),
    ],
)
def test_async_shell_awaits_exactly_the_awaitable_fallback_values(fallback, expected):
    breaker, _ = make(fallback=fallback)
    breaker.force_open()

    async def fetch():
        return "value"

    assert asyncio.run(breaker(fetch)()) == expected


def test_async_shell_returns_a_plain_generator_without_awaiting_it():
    breaker, _ = make(fallback=plain_generator)
    breaker.force_open()

    async def fetch():
        return "value"

    value = asyncio.run(breaker(fetch)())
    assert inspect.isgenerator(value)
    assert list(value) == ["not awaited"]


def test_the_rejection_reads_writes_and_pickles_like_a_call_not_permitted():
    captured = []
    breaker, clock = make(fallback=captured.append)
    for _ in range(4):
        fail(breaker)
    clock.advance(10.0)
    breaker.call(lambda: None)
    (exc,) = captured
    assert isinstance(exc, CallNotPermitted)
    assert (exc.name, exc.retry_after) == ("svc", 20.0)
    assert str(exc) == "circuit breaker 'svc' is open; retry after 20.000s"
    exc.name, exc.retry_after = "other", 1.5
    assert str(exc) == str(CallNotPermitted("other", 1.5))
    copy = pickle.loads(pickle.dumps(exc))
    assert (type(copy), copy.name, copy.retry_after) == (type(exc), "other", 1.5)
