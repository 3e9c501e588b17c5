"""The decorator, call, context managers and fallback, sync and async, over one state machine."""

from __future__ import annotations

import asyncio
import pickle
import threading

import pytest

from fender._clock import ManualClock
from fender.errors import CallNotPermitted
from fender.resilience import BreakerConfig, BreakerState, CircuitBreaker

CONFIG = BreakerConfig(
    failure_threshold=2,
    failure_rate_threshold=None,
    slow_call_duration_threshold=None,
    recovery_timeout=30.0,
    recovery_jitter=0.0,
    permitted_calls_in_half_open=1,
    success_threshold=1,
)


def make(**kwargs):
    clock = ManualClock()
    return CircuitBreaker("svc", CONFIG, clock=clock, **kwargs), clock


def test_sync_decorator_counts_failures_and_rejects_with_retry_after():
    breaker, clock = make()

    @breaker
    def fetch(key: str) -> str:
        """Fetch a key."""
        raise ConnectionError(key)

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a key."
    for _ in range(2):
        with pytest.raises(ConnectionError):
            fetch("k")
    clock.advance(10.0)
    with pytest.raises(CallNotPermitted) as caught:
        fetch("k")
    assert caught.value.name == "svc"
    assert caught.value.retry_after == pytest.approx(20.0)
    assert "retry after 20.000s" in str(caught.value)


def test_async_decorator_shares_the_state_machine_with_sync_callers():
    breaker, clock = make()
    calls = []

    @breaker
    async def fetch_async(key: str) -> str:
        calls.append(key)
        raise ConnectionError(key)

    def fetch_sync() -> str:
        return "sync"

    async def main():
        for key in "ab":
            with pytest.raises(ConnectionError):
                await fetch_async(key)
        with pytest.raises(CallNotPermitted):
            await fetch_async("c")

    assert asyncio.iscoroutinefunction(fetch_async)
    asyncio.run(main())
    assert calls == ["a", "b"]
    with pytest.raises(CallNotPermitted):  # the same breaker, from sync code
        breaker.call(fetch_sync)
    clock.advance(30.0)
    assert breaker.call(fetch_sync) == "sync"
    assert breaker.state is BreakerState.CLOSED


def test_call_and_call_async_pass_arguments():
    breaker, _ = make()

    async def add_async(a: int, b: int = 0) -> int:
        return a + b

    assert breaker.call(lambda a, b=0: a + b, 1, b=2) == 3
    assert asyncio.run(breaker.call_async(add_async, 1, b=2)) == 3


def test_decorated_method_binds_self():
    breaker, _ = make()

    class Client:
        def __init__(self) -> None:
            self.base = 10

        @breaker
        def get(self, offset: int) -> int:
            return self.base + offset

    assert Client().get(5) == 15


def test_fallback_receives_the_rejection_or_the_failure_and_the_arguments():
    seen = []

    def fallback(exc, key):
        seen.append((isinstance(exc, CallNotPermitted), type(exc) is ConnectionError, key))
        return f"cached:{key}"

    breaker, _ = make(fallback=fallback)

    @breaker
    def fetch(key):
        raise ConnectionError(key)

    assert [fetch("a"), fetch("b"), fetch("c")] == ["cached:a", "cached:b", "cached:c"]
    assert seen == [(False, True, "a"), (False, True, "b"), (True, False, "c")]
    assert breaker.state is BreakerState.OPEN


def test_rejection_given_to_a_fallback_is_a_full_call_not_permitted():
    captured = []
    breaker, _ = make(fallback=captured.append)
    breaker.force_open()
    breaker.call(lambda: None)
    (exc,) = captured
    assert isinstance(exc, CallNotPermitted)
    assert (exc.name, exc.retry_after) == ("svc", 30.0)
    assert str(exc) == str(CallNotPermitted("svc", 30.0))
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.name, copy.retry_after) == ("svc", 30.0)


def test_ignored_exceptions_skip_the_fallback():
    config = BreakerConfig(failure_threshold=2, ignore_exceptions=(KeyError,))
    breaker = CircuitBreaker("svc", config, fallback=lambda _exc: "fallback")

    def lookup():
        raise KeyError("missing")

    with pytest.raises(KeyError):
        breaker.call(lookup)


def test_per_decorator_fallback_overrides_the_breakers():
    breaker, _ = make(fallback=lambda _exc: "breaker")
    breaker.force_open()
    plain = breaker.decorate(lambda: "value", fallback=None)
    own = breaker.decorate(lambda: "value", fallback=lambda _exc: "own")
    with pytest.raises(CallNotPermitted):
        plain()
    assert own() == "own"
    assert breaker.call(lambda: "value") == "breaker"


def test_async_fallback_may_be_sync_or_async():
    async def async_fallback(exc):
        return "async"

    breaker, _ = make()
    breaker.force_open()

    async def fetch():
        return "value"

    async def main():
        first = await breaker.decorate(fetch, fallback=async_fallback)()
        second = await breaker.decorate(fetch, fallback=lambda _exc: "sync")()
        return first, second

    assert asyncio.run(main()) == ("async", "sync")


def test_failure_predicate_applies_to_decorated_results():
    config = BreakerConfig(failure_threshold=1, failure_predicate=lambda status: status >= 500)
    breaker = CircuitBreaker("http", config)
    assert breaker.call(lambda: 503) == 503  # the value is returned, and counted as a failure
    assert breaker.state is BreakerState.OPEN


def test_sync_context_manager_counts_and_nests():
    breaker, _ = make()
    with breaker as permit:
        assert permit is not None
        with breaker:
            pass
    for _ in range(2):
        with pytest.raises(ConnectionError), breaker:
            raise ConnectionError
    with pytest.raises(CallNotPermitted), breaker:
        pass
    assert breaker.snapshot().consecutive_failures == 2


def test_async_context_manager_in_concurrent_tasks():
    breaker, _ = make()

    async def work(fail: bool):
        async with breaker:
            await asyncio.sleep(0)
            if fail:
                raise ConnectionError

    async def main():
        results = await asyncio.gather(work(False), work(True), work(True), return_exceptions=True)
        return [type(result).__name__ for result in results]

    assert asyncio.run(main()) == ["NoneType", "ConnectionError", "ConnectionError"]
    assert breaker.state is BreakerState.OPEN


def test_exit_without_enter_is_an_error():
    breaker, _ = make()
    with pytest.raises(RuntimeError, match="without entering"):
        breaker.__exit__(None, None, None)


def test_cancelled_call_frees_its_trial_slot():
    breaker, clock = make()
    for _ in range(2):
        breaker.on_error(ConnectionError())
    clock.advance(30.0)

    async def hang():
        await asyncio.sleep(10)

    async def main():
        task = asyncio.create_task(breaker.call_async(hang))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_acquire() is not None  # the slot came back


def test_concurrent_calls_through_a_closed_breaker_are_not_serialised():
    breaker = CircuitBreaker("parallel")
    threads, per_thread = 8, 5
    # Every call waits inside the breaker until all the threads are inside too: serialised,
    # the first call would wait alone until the barrier gave up (BrokenBarrierError).
    inside = threading.Barrier(threads, timeout=30)
    errors: list[BaseException] = []

    @breaker
    def meet():
        inside.wait()

    def worker():
        try:
            for _ in range(per_thread):
                meet()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    assert breaker.snapshot().calls == threads * per_thread
