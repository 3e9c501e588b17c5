from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time

import orjson
import pytest

from fender._clock import ManualClock
from fender._status import Status
from fender.errors import ConfigurationError
from fender.health import (
    Check,
    CheckResult,
    HealthConfig,
    HealthRegistry,
    Kind,
    render_health_json,
    render_json,
)


def health_threads():
    return [t for t in threading.enumerate() if t.name.startswith("fender-health")]


def wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def release():
    """An event that hung sync checks wait on; set at teardown so their threads end."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def registry():
    # Threads of registries other tests left running (apps never shut down) are not ours.
    before = set(health_threads())
    reg = HealthRegistry(HealthConfig(deadline=10.0))
    yield reg
    reg.close()
    assert wait_for(lambda: not set(health_threads()) - before, 15), health_threads()


# --- the outcome matrix ----------------------------------------------------------------------


def behaviours(release):
    """name -> (sync func, async func, own status, output fragment)."""

    def sync_raise():
        raise ConnectionError("redis://user:secret@cache:6379 refused")

    async def async_raise():
        raise ConnectionError("redis://user:secret@cache:6379 refused")

    def sync_hang():
        release.wait(60)

    async def async_hang():
        await asyncio.sleep(60)

    def sync_slow():
        time.sleep(0.05)

    async def async_slow():
        await asyncio.sleep(0.05)

    def const(value):
        async def async_value():
            return value

        return (lambda: value), async_value

    return {
        "pass-none": (*const(None), Status.PASS, ""),
        "pass-true": (*const(True), Status.PASS, ""),
        "warn": (*const(CheckResult(Status.WARN, "lagging")), Status.WARN, "lagging"),
        "fail-false": (*const(False), Status.FAIL, "returned False"),
        "fail-status": (*const(Status.FAIL), Status.FAIL, ""),
        "exception": (sync_raise, async_raise, Status.FAIL, "ConnectionError: redis://user:***@"),
        "timeout": (sync_hang, async_hang, Status.FAIL, "timed out after 0.1s"),
        "slow": (sync_slow, async_slow, Status.PASS, ""),
    }


def timeout_for(behaviour):
    """0.1 s where the check must time out; elsewhere room for a loaded machine's scheduling."""
    return 0.1 if behaviour == "timeout" else 10.0


MATRIX = [
    "pass-none",
    "pass-true",
    "warn",
    "fail-false",
    "fail-status",
    "exception",
    "timeout",
    "slow",
]


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("critical", [True, False], ids=["critical", "non-critical"])
@pytest.mark.parametrize("behaviour", MATRIX)
def test_outcome_matrix(registry, release, behaviour, critical, flavour):
    sync_func, async_func, own, fragment = behaviours(release)[behaviour]
    func = sync_func if flavour == "sync" else async_func
    registry.add(func, name="probe", critical=critical, timeout=timeout_for(behaviour))
    registry.add(lambda: None, name="ok")

    report = asyncio.run(registry.run())

    probe = report.checks["probe"]
    assert probe.status is own
    assert fragment in probe.result.output
    assert "secret" not in probe.result.output
    expected = own if critical or own is not Status.FAIL else Status.WARN
    assert report.status is expected
    assert report.checks["ok"].status is Status.PASS
    assert list(report.checks) == ["probe", "ok"]


def test_run_sync_gives_the_same_matrix(registry, release):
    for name, (sync_func, async_func, _own, _fragment) in behaviours(release).items():
        registry.add(sync_func, name=f"s-{name}", timeout=timeout_for(name))
        registry.add(async_func, name=f"a-{name}", timeout=timeout_for(name))
    sync_report = registry.run_sync()
    release.set()
    for name, (_s, _a, own, fragment) in behaviours(release).items():
        for prefix in ("s", "a"):
            outcome = sync_report.checks[f"{prefix}-{name}"]
            assert outcome.status is own, name
            assert fragment in outcome.result.output
    assert sync_report.status is Status.FAIL


def test_a_check_own_timeout_error_is_reported_as_raised(registry):
    def socket_timeout():
        raise TimeoutError("read from cache:6379 timed out")

    registry.add(socket_timeout, name="t", timeout=1.0)
    outcome = registry.run_sync().checks["t"]
    assert outcome.result.output == "TimeoutError: read from cache:6379 timed out"


# --- concurrency and deadlines -------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["sync", "async", "mixed"])
def test_checks_run_concurrently(registry, flavour):
    # Each check waits for the other: both pass only if they run at the same time (run one
    # after the other, the first waits in vain until the barrier gives up and breaks).
    meet = threading.Barrier(2, timeout=30)

    def sync_meet():
        meet.wait()

    async def async_meet():
        await asyncio.to_thread(meet.wait)

    first, second = {
        "sync": (sync_meet, sync_meet),
        "async": (async_meet, async_meet),
        "mixed": (sync_meet, async_meet),
    }[flavour]
    registry.add(first, name="one", timeout=60)
    registry.add(second, name="two", timeout=60)

    report = registry.run_sync(deadline=60)

    assert report.status is Status.PASS, report


def test_global_deadline_bounds_the_run_and_the_result_lands_later(registry, release):
    calls = []

    def slow():
        calls.append(1)
        release.wait(60)  # until the test releases it, after the run has returned

    registry.add(slow, name="slow", timeout=60.0)
    registry.add(lambda: True, name="fast")

    started = time.perf_counter()
    report = registry.run_sync(deadline=0.1)
    elapsed = time.perf_counter() - started

    # Returned at the deadline: waiting for the slow check would take the full minute.
    assert 0.09 < elapsed < 30
    assert report.status is Status.FAIL
    assert "deadline" in report.checks["slow"].result.output
    assert report.checks["fast"].status is Status.PASS
    assert registry.snapshot().checks["slow"].result.output == "not checked yet"

    release.set()  # the call goes on after its caller gave up, and feeds the snapshot
    assert wait_for(lambda: registry.snapshot().checks["slow"].status is Status.PASS)
    assert len(calls) == 1


def test_deadline_validation(registry):
    with pytest.raises(ConfigurationError):
        registry.run_sync(deadline=0)
    with pytest.raises(ConfigurationError):
        HealthConfig(deadline=-1)
    with pytest.raises(ConfigurationError):
        HealthConfig(max_workers=0)
    with pytest.raises(ConfigurationError):
        HealthConfig(refresh_interval=float("nan"))


def test_hung_sync_check_holds_one_thread_only(registry, release):
    calls = []

    def hang():
        calls.append(1)
        release.wait(60)

    registry.add(hang, name="hang", timeout=0.05)
    first = registry.run_sync().checks["hang"]
    second = registry.run_sync().checks["hang"]

    assert "timed out" in first.result.output
    assert "has not returned yet" in second.result.output
    assert len(calls) == 1

    release.set()
    assert wait_for(lambda: not registry._runner._busy)
    registry.remove("hang")
    registry.add(lambda: None, name="hang")
    assert registry.run_sync().status is Status.PASS


def test_a_cancelled_caller_does_not_cancel_the_shared_call(registry):
    calls = []
    gate = []  # an asyncio.Event, made on the test's loop

    async def probe():
        calls.append(1)
        await gate[0].wait()
        return True

    registry.add(probe, name="p")

    async def main():
        gate.append(asyncio.Event())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(registry.run(), timeout=0.01)
        # Opened on the next loop turn: run() joins the call in flight before its first await.
        asyncio.get_running_loop().call_soon(gate[0].set)
        return await registry.run()

    report = asyncio.run(main())
    assert report.status is Status.PASS
    assert len(calls) == 1


# --- single flight and cache ---------------------------------------------------------------


def test_single_flight_50_async_callers(registry):
    calls = {"async": 0, "sync": 0}

    async def async_probe():
        calls["async"] += 1
        await asyncio.sleep(0.05)

    def sync_probe():
        calls["sync"] += 1
        time.sleep(0.05)

    registry.add(async_probe, name="a")
    registry.add(sync_probe, name="s")

    async def main():
        return await asyncio.gather(*(registry.run() for _ in range(50)))

    reports = asyncio.run(main())
    assert calls == {"async": 1, "sync": 1}
    assert all(r.status is Status.PASS for r in reports)
    assert len({id(r.checks["a"]) for r in reports}) == 1


def joins(registry):
    """A semaphore released each time a caller joins (or starts) a check's call."""
    joined = threading.Semaphore(0)
    waiter = registry._runner._waiter

    def counting(check, loop):
        future = waiter(check, loop)
        joined.release()
        return future

    registry._runner._waiter = counting
    return joined


def test_single_flight_50_threads_on_run_sync(registry, release):
    calls = []
    joined = joins(registry)

    def probe():
        calls.append(1)
        release.wait(60)  # in flight until all 50 callers have joined

    registry.add(probe, name="p", timeout=60)

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        futures = [pool.submit(registry.run_sync, deadline=60) for _ in range(50)]
        for _ in range(50):
            assert joined.acquire(timeout=30)
        release.set()
        reports = [future.result() for future in futures]

    assert len(calls) == 1
    assert all(r.status is Status.PASS for r in reports)


def test_single_flight_across_the_app_loop_and_run_sync(registry, release):
    calls = []

    def probe():
        calls.append(1)
        release.wait(60)

    registry.add(probe, name="p", timeout=60)
    joined = joins(registry)

    async def main():
        app_run = asyncio.ensure_future(registry.run(deadline=60))
        loop = asyncio.get_running_loop()
        sync_run = loop.run_in_executor(None, functools.partial(registry.run_sync, deadline=60))
        for _ in range(2):  # the app loop's caller and run_sync's, on the private loop
            assert await asyncio.to_thread(joined.acquire, timeout=30)
        release.set()
        return await app_run, await sync_run

    from_loop, from_thread = asyncio.run(main())
    assert len(calls) == 1
    assert from_loop.checks["p"] is from_thread.checks["p"]


def test_cache_ttl_with_manual_clock():
    clock = ManualClock()
    registry = HealthRegistry(clock=clock)
    calls = []

    def probe():
        calls.append(1)
        return len(calls) == 1  # the first call passes, later ones fail

    registry.add(probe, name="cached", cache_ttl=5.0)
    registry.add(lambda: calls.append(0), name="uncached")
    try:
        assert registry.run_sync().status is Status.PASS
        assert calls == [1, 0]
        clock.advance(4.9)
        assert registry.run_sync().status is Status.PASS
        assert calls == [1, 0, 0]
        clock.advance(0.1)
        report = registry.run_sync()
        assert report.status is Status.FAIL
        assert calls == [1, 0, 0, 1, 0]
        clock.advance(1)  # a failure is cached too: a dead dependency is not hammered
        assert registry.run_sync().status is Status.FAIL
        assert calls == [1, 0, 0, 1, 0, 0]
    finally:
        registry.close()


# --- sanitization through the registry ----------------------------------------------------------


def test_no_password_reaches_a_report_or_a_body(registry):
    def leaky():
        raise ConnectionError("cannot connect redis://user:secret@host:6379/0 token=secret")

    def leaky_result():
        return CheckResult(
            Status.WARN,
            "via https://admin:secret@proxy",
            details={"dsn": "postgresql://a:secret@db/x", "nested": ["Bearer secretsecret"]},
        )

    registry.add(leaky, name="raises")
    registry.add(leaky_result, name="returns")
    report = registry.run_sync()

    for body in (render_json(report), render_health_json(report), repr(report).encode()):
        assert b"secret" not in body
    assert "redis://user:***@host" in report.checks["raises"].result.output
    assert "secret" not in orjson.dumps(dict(report.checks["returns"].result.details)).decode()


# --- sync entry point ---------------------------------------------------------------------------


def test_run_sync_from_a_plain_thread(registry):
    async def probe():
        return True

    registry.add(probe, name="p")
    result = []
    thread = threading.Thread(target=lambda: result.append(registry.run_sync()))
    thread.start()
    thread.join(60)
    assert result[0].status is Status.PASS


def test_run_sync_from_a_running_loops_thread_pool(registry):
    async def probe():
        return True

    registry.add(probe, name="a")
    registry.add(lambda: True, name="s")

    async def main():
        return await asyncio.get_running_loop().run_in_executor(None, registry.run_sync)

    report = asyncio.run(main())
    assert report.status is Status.PASS
    assert set(report.checks) == {"a", "s"}


# --- snapshot and refresher ---------------------------------------------------------------------


def test_snapshot_does_no_io_and_honours_max_age():
    clock = ManualClock()
    registry = HealthRegistry(clock=clock)
    calls = []
    registry.add(lambda: calls.append(1), name="p")
    try:
        before = registry.snapshot()
        assert before.status is Status.FAIL
        assert before.checks["p"].result.output == "not checked yet"
        assert calls == []

        registry.run_sync()
        assert registry.snapshot().status is Status.PASS
        clock.advance(30)
        assert registry.snapshot(max_age=60).status is Status.PASS
        stale = registry.snapshot(max_age=20)
        assert stale.status is Status.FAIL
        assert stale.checks["p"].result.output.startswith("stale: last result 30.0s old")
        assert calls == [1]
    finally:
        registry.close()


def test_refresher_on_the_private_loop_starts_and_stops_cleanly():
    before = set(health_threads())
    registry = HealthRegistry(HealthConfig(refresh_interval=0.02))
    called = threading.Semaphore(0)
    registry.add(called.release, name="p")
    try:
        registry.start()
        registry.start()  # idempotent
        assert called.acquire(timeout=30)
        assert called.acquire(timeout=30)  # refreshed again
        assert registry.snapshot().status is Status.PASS
        registry.stop()
        registry.stop()
        assert registry._refresher._running is None
        assert not registry._runner._tasks
    finally:
        registry.close()
    assert wait_for(lambda: not set(health_threads()) - before, 15), health_threads()


def test_refresher_on_a_running_loop_leaves_no_task():
    before = set(health_threads())
    registry = HealthRegistry(HealthConfig(refresh_interval=0.01))
    calls = []
    refreshed = []

    async def probe():
        calls.append(1)
        if len(calls) == 2:
            refreshed[0].set()

    registry.add(probe, name="p")

    async def main():
        refreshed.append(asyncio.Event())
        registry.start()
        await asyncio.wait_for(refreshed[0].wait(), 30)
        await registry.aclose()
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(main()) == set()
    assert registry._private.current is None  # the refresher ran on the app's loop: no thread
    assert not set(health_threads()) - before


def test_close_leaves_the_registry_usable(registry):
    registry.add(lambda: None, name="p")
    assert registry.run_sync().status is Status.PASS
    registry.close()
    assert registry.run_sync().status is Status.PASS


# --- registration, selection, observation -------------------------------------------------------


def test_registration_and_selection(registry):
    @registry.check(name="live", kind="liveness")
    def live():
        return True

    @registry.check(tags=["storage"])
    async def db():
        return True

    prepared = Check(name="cache", func=lambda: True, tags=frozenset({"storage"}))
    added = registry.add(prepared, critical=False, kind=Kind.INFO)

    assert live() is True
    assert added.critical is False
    assert prepared.critical is True
    assert [c.name for c in registry.select()] == ["live", "db", "cache"]
    assert [c.name for c in registry.select(kind="liveness")] == ["live"]
    assert [c.name for c in registry.select(kind=["readiness", "info"])] == ["db", "cache"]
    assert [c.name for c in registry.select(tags="storage")] == ["db", "cache"]
    assert set(registry.run_sync(kind=Kind.LIVENESS).checks) == {"live"}

    with pytest.raises(ConfigurationError) as info:
        registry.add(lambda: None, name="live")
    assert info.value.field == "name"
    with pytest.raises(ConfigurationError):
        registry.add(lambda: None)  # "<lambda>" is no name
    with pytest.raises(ConfigurationError):
        registry.select(kind="startup")
    assert registry.remove("live")
    assert not registry.remove("live")


def test_listeners_and_transition_logs(registry, caplog):
    state = {"ok": True}
    seen = []
    registry.add(lambda: state["ok"], name="flappy")
    registry.add_listener(seen.append)
    registry.add_listener(lambda _outcome: 1 / 0)

    with caplog.at_level(logging.INFO, logger="fender.health"):
        registry.run_sync()
        state["ok"] = False
        registry.run_sync()
        registry.run_sync()
        state["ok"] = True
        registry.run_sync()

    assert [o.status for o in seen] == [Status.PASS, Status.FAIL, Status.FAIL, Status.PASS]
    transitions = [r for r in caplog.records if r.getMessage() == "health_check_status"]
    assert [(r.previous, r.status) for r in transitions] == [("pass", "fail"), ("fail", "pass")]
    assert transitions[0].levelno == logging.WARNING
    assert sum(r.getMessage() == "health_listener_failed" for r in caplog.records) == 4


def test_a_refresh_while_the_interpreter_exits_records_no_failure(caplog):
    # At exit, Python shuts its thread pools down before atexit hooks run, while the refresher
    # may still run a sync check: "cannot schedule new futures" is no failure of the check.
    registry = HealthRegistry()
    registry.add(lambda: True, name="memory")
    executor = concurrent.futures.ThreadPoolExecutor()
    executor.shutdown()
    registry._runner._executor = executor
    with caplog.at_level(logging.DEBUG):
        asyncio.run(registry.run())
    assert registry.snapshot().checks["memory"].result.output == "not checked yet"
    assert not [r for r in caplog.records if "memory" in r.getMessage()]
