"""The health registry: runs checks concurrently with timeouts, caching and single flight.

One async runner (:meth:`HealthRegistry.run`) holds the whole algorithm. The sync entry point
(:meth:`HealthRegistry.run_sync`, for WSGI) and the background refresher drive that same
coroutine; there is no second implementation.

Per run, every selected check starts at once: async callables as tasks on the running loop,
sync callables on a bounded thread pool shared by the registry. Each check has its own timeout
and the run a global deadline; a timeout or an exception becomes a failing result, never an
exception out of the registry.

Single flight is per check, which covers "per group/kind": while a check is in flight, every
caller (any selection, any event loop, any thread) waits for that one call instead of starting
another. Results are kept per check, reused for ``cache_ttl`` seconds, and returned without I/O
by :meth:`HealthRegistry.snapshot`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from fender._clock import Clock, monotonic
from fender._status import Status
from fender.errors import ConfigurationError
from fender.health.checks import (
    Check,
    CheckFunc,
    CheckOutcome,
    CheckResult,
    HealthReport,
    Kind,
    deadline_result,
    failure_result,
    normalize,
    timeout_result,
)

__all__ = ["HealthConfig", "HealthRegistry", "KindSelector", "Listener"]

logger = logging.getLogger("fender.health")

F = TypeVar("F", bound=Callable[[], object])
KindSelector = Kind | str | Iterable[Kind | str] | None
"""One kind, several kinds, or None for all."""
Listener = Callable[[CheckOutcome], None]
"""Called with every fresh outcome (not cache hits), e.g. to export metrics."""

# How long run_sync waits beyond the deadline before giving up on the loop thread itself
# (the runner honours the deadline, so this only fires if that thread is wedged).
_SYNC_GRACE = 1.0
_JOIN_TIMEOUT = 5.0
_NOT_YET = CheckResult(Status.FAIL, "not checked yet", details={"error": "NoResult"})
_STILL_RUNNING = CheckResult(
    Status.FAIL,
    "the previous call has not returned yet; not started again",
    details={"error": "StillRunning"},
)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class HealthConfig:
    """How a :class:`HealthRegistry` runs its checks.

    Args:
        deadline: seconds a whole run may take (default 3); checks still running then are
            reported failed for that caller, and keep running to feed the cache.
        max_workers: threads for sync checks (default 8). A sync check never holds more than
            one thread, even when it hangs, so this bounds the threads health can use.
        refresh_interval: seconds between two background refreshes (default 10).
    """

    deadline: float = 3.0
    max_workers: int = 8
    refresh_interval: float = 10.0

    def __post_init__(self) -> None:
        """Validate every field, raising ConfigurationError naming it."""
        _require_positive("deadline", self.deadline)
        _require_positive("refresh_interval", self.refresh_interval)
        if (
            not isinstance(self.max_workers, int)
            or isinstance(self.max_workers, bool)
            or self.max_workers < 1
        ):
            raise ConfigurationError("max_workers", self.max_workers, "an integer >= 1")


def _require_positive(field: str, value: object) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(field, value, "a finite number of seconds > 0")


class HealthRegistry:
    """Holds the checks of a process and runs them.

    Example:
        >>> registry = HealthRegistry()
        >>> @registry.check(name="always", kind="liveness")
        ... def always() -> None:
        ...     return None
        >>> registry.run_sync().status
        <Status.PASS: 'pass'>
        >>> registry.close()

    Args:
        config: deadline, thread pool size and refresh interval.
        clock: monotonic seconds for durations, cache ages and snapshot ages.
        wall_clock: epoch seconds, used only for the ``time`` shown with results.
    """

    def __init__(
        self,
        config: HealthConfig | None = None,
        *,
        clock: Clock = monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Create an empty registry; threads and loops start lazily, on first use."""
        self._config = config or HealthConfig()
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._checks: dict[str, Check] = {}
        self._latest: dict[str, CheckOutcome] = {}
        self._inflight: dict[str, tuple[Check, concurrent.futures.Future[CheckOutcome]]] = {}
        self._busy: set[str] = set()
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()
        self._refresher: tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None = None

    @property
    def config(self) -> HealthConfig:
        """The configuration this registry runs with."""
        return self._config

    # --- registration ---------------------------------------------------------------------------

    def add(
        self,
        target: Check | CheckFunc,
        *,
        name: str | None = None,
        kind: Kind | str | None = None,
        critical: bool | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        cache_ttl: float | None = None,
        component: str | None = None,
        component_type: str | None = None,
        measurement: str | None = None,
    ) -> Check:
        """Register a check: a callable, or a prepared :class:`Check` (e.g. from builtins).

        Options left as None keep the Check's value (or its default); given ones override it.
        The name defaults to the callable's ``__name__``.

        Returns:
            The registered Check.

        Raises:
            ConfigurationError: an invalid option, or a name already registered.
        """
        given = {
            "name": name,
            "kind": kind,
            "critical": critical,
            "timeout": timeout,
            "tags": None if tags is None else frozenset(tags),
            "cache_ttl": cache_ttl,
            "component": component,
            "component_type": component_type,
            "measurement": measurement,
        }
        options: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        if isinstance(target, Check):
            check = dataclasses.replace(target, **options)
        else:
            options.setdefault("name", getattr(target, "__name__", ""))
            check = Check(func=target, **options)
        with self._lock:
            if check.name in self._checks:
                raise ConfigurationError("name", check.name, "a name not already registered")
            self._checks[check.name] = check
        return check

    def check(
        self,
        *,
        name: str | None = None,
        kind: Kind | str | None = None,
        critical: bool | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        cache_ttl: float | None = None,
        component: str | None = None,
        component_type: str | None = None,
        measurement: str | None = None,
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add`; returns the function unchanged.

        Example:
            >>> registry = HealthRegistry()
            >>> @registry.check(name="db", critical=True, timeout=1.0, tags=["storage"])
            ... async def db() -> bool:
            ...     return True
        """

        def register(func: F) -> F:
            self.add(
                func,
                name=name,
                kind=kind,
                critical=critical,
                timeout=timeout,
                tags=tags,
                cache_ttl=cache_ttl,
                component=component,
                component_type=component_type,
                measurement=measurement,
            )
            return func

        return register

    def remove(self, name: str) -> bool:
        """Unregister the check ``name`` and forget its results; False if it was not there."""
        with self._lock:
            self._latest.pop(name, None)
            return self._checks.pop(name, None) is not None

    def select(
        self, *, kind: KindSelector = None, tags: Iterable[str] | str | None = None
    ) -> tuple[Check, ...]:
        """The registered checks of the given kinds having any of the given tags, in order."""
        kinds = _kinds(kind)
        wanted = None if tags is None else frozenset((tags,) if isinstance(tags, str) else tags)
        with self._lock:
            checks = tuple(self._checks.values())
        return tuple(
            check
            for check in checks
            if (kinds is None or check.kind in kinds) and (wanted is None or check.tags & wanted)
        )

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(outcome)`` after every fresh check result (on the runner's thread).

        A listener must be quick and must not block; its exceptions are logged and ignored.
        """
        with self._lock:
            self._listeners.append(listener)

    # --- running --------------------------------------------------------------------------------

    async def run(
        self,
        *,
        kind: KindSelector = None,
        tags: Iterable[str] | str | None = None,
        deadline: float | None = None,
    ) -> HealthReport:
        """Run the selected checks concurrently and aggregate them; never raises for a check.

        Args:
            kind: one kind, several, or None for all.
            tags: run only checks having any of these tags; None for all.
            deadline: seconds for the whole run; defaults to the config's ``deadline``.
        """
        limit = self._config.deadline if deadline is None else deadline
        _require_positive("deadline", limit)
        checks = self.select(kind=kind, tags=tags)
        loop = asyncio.get_running_loop()
        started, wall = self._clock(), self._wall()
        waiters = [self._waiter(check, loop) for check in checks]
        if waiters:
            await asyncio.wait(waiters, timeout=limit)
        outcomes: list[CheckOutcome] = []
        for check, waiter in zip(checks, waiters, strict=True):
            if waiter.done():
                outcomes.append(waiter.result())
            else:
                # Only this caller's future is cancelled: the shared call goes on and its
                # result lands in the cache and the snapshot.
                waiter.cancel()
                outcomes.append(self._outcome(check, deadline_result(limit), duration=limit))
        return HealthReport.from_outcomes(
            outcomes, time=wall, duration=max(self._clock() - started, 0.0)
        )

    def run_sync(
        self,
        *,
        kind: KindSelector = None,
        tags: Iterable[str] | str | None = None,
        deadline: float | None = None,
    ) -> HealthReport:
        """Blocking :meth:`run` for WSGI and other threads; same arguments, same result.

        Call it from a thread without a running event loop (a WSGI worker thread, a loop's
        thread pool); inside a coroutine, ``await run()`` instead.
        """
        # Why a private loop thread rather than asyncio.run() per call: a call that outlives
        # its caller's deadline keeps running and lands in the cache and single flight, where
        # asyncio.run() would cancel it on return; one long-lived loop costs nothing per call
        # (no loop creation); and single flight across concurrent WSGI threads then happens on
        # one loop. The thread is a daemon, started on first use and ended by close().
        limit = self._config.deadline if deadline is None else deadline
        _require_positive("deadline", limit)
        loop = self._private_loop()
        if threading.current_thread() is self._loop_thread:
            raise RuntimeError("run_sync() called on the registry's own loop; await run()")
        future = asyncio.run_coroutine_threadsafe(
            self.run(kind=kind, tags=tags, deadline=limit), loop
        )
        try:
            return future.result(timeout=limit + _SYNC_GRACE)
        except TimeoutError:
            future.cancel()
            checks = self.select(kind=kind, tags=tags)
            outcomes = [self._outcome(c, deadline_result(limit), duration=limit) for c in checks]
            return HealthReport.from_outcomes(outcomes, time=self._wall(), duration=limit)

    def snapshot(
        self,
        *,
        kind: KindSelector = None,
        tags: Iterable[str] | str | None = None,
        max_age: float | None = None,
    ) -> HealthReport:
        """The latest result of each selected check, aggregated, without running anything.

        Fed by every run (the background refresher's included). A check with no result yet
        fails with "not checked yet"; with ``max_age``, a result older than that many seconds
        fails as stale, so a wedged refresher cannot keep reporting an old ``pass``.
        """
        checks = self.select(kind=kind, tags=tags)
        now = self._clock()
        with self._lock:
            latest = dict(self._latest)
        outcomes: list[CheckOutcome] = []
        for check in checks:
            outcome = latest.get(check.name)
            if outcome is None or outcome.check is not check:
                outcomes.append(CheckOutcome(check=check, result=_NOT_YET))
            elif max_age is not None and now - outcome.at > max_age:
                stale = CheckResult(
                    Status.FAIL,
                    f"stale: last result {now - outcome.at:.1f}s old (max {max_age:g}s)",
                    details={"error": "Stale", "last_status": str(outcome.status)},
                )
                outcomes.append(dataclasses.replace(outcome, result=stale))
            else:
                outcomes.append(outcome)
        return HealthReport.from_outcomes(outcomes, time=self._wall())

    # --- background refresh -----------------------------------------------------------------

    def start(self) -> None:
        """Start refreshing every check every ``refresh_interval`` seconds; idempotent.

        Called inside a running event loop (an ASGI lifespan), the refresher is a task on that
        loop, so async checks use the app's loop-bound clients. Called elsewhere (WSGI, a
        gunicorn hook), it runs on the registry's private loop thread.
        """
        with self._refresh_lock:
            if self._refresher is not None:
                return
            loop = _running_loop()
            refresh = _refresh_forever(weakref.ref(self), self._config.refresh_interval)
            if loop is not None:
                task = loop.create_task(refresh, name="fender-health-refresher")
            else:
                loop = self._private_loop()
                spawn = asyncio.run_coroutine_threadsafe(_spawn(refresh), loop)
                task = spawn.result(timeout=_JOIN_TIMEOUT)
            self._refresher = (loop, task)

    def stop(self) -> None:
        """Stop the refresher; idempotent.

        Waits for it to end when it runs on the private loop. Called on the refresher's own
        loop it can only cancel it: ``await astop()`` there to wait.
        """
        entry = self._take_refresher()
        if entry is None:
            return
        loop, task = entry
        if _running_loop() is loop:
            task.cancel()
            return
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # that loop is already closed, and the task with it
            return
        if loop is self._loop:
            settle = asyncio.run_coroutine_threadsafe(_settle(task), loop)
            settle.result(timeout=_JOIN_TIMEOUT)

    async def astop(self) -> None:
        """Stop the refresher and wait until it has ended (for an ASGI lifespan shutdown)."""
        entry = self._take_refresher()
        if entry is None:
            return
        loop, task = entry
        if asyncio.get_running_loop() is loop:
            task.cancel()
            await _settle(task)
            return
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_settle(task), loop))

    def close(self) -> None:
        """Stop the refresher, the private loop thread and the thread pool.

        Does not wait for sync checks still running in threads (a hung one cannot be
        interrupted). The registry stays usable: threads start again on the next use.
        """
        self.stop()
        with self._lock:
            loop, thread, executor = self._loop, self._loop_thread, self._executor
            self._loop = self._loop_thread = self._executor = None
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # already closed
                loop.call_soon_threadsafe(loop.stop)
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=_JOIN_TIMEOUT)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """:meth:`astop`, then :meth:`close`."""
        await self.astop()
        self.close()

    # --- internals ------------------------------------------------------------------------------

    def _waiter(
        self, check: Check, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[CheckOutcome]:
        """A future on ``loop`` for this check's outcome: cached, in flight, or a new call."""
        waiter: asyncio.Future[CheckOutcome] = loop.create_future()
        with self._lock:
            latest = self._latest.get(check.name)
            if (
                latest is not None
                and latest.check is check
                and check.cache_ttl > 0
                and self._clock() - latest.at < check.cache_ttl
            ):
                waiter.set_result(latest)
                return waiter
            entry = self._inflight.get(check.name)
            if entry is not None and entry[0] is check:
                shared, owner = entry[1], False
            else:
                # A check replaced under the same name while the old one is in flight runs
                # unshared rather than receive the old check's result.
                shared, owner = concurrent.futures.Future(), True
                if entry is None:
                    self._inflight[check.name] = (check, shared)
        if owner:
            task = loop.create_task(
                self._execute(check, shared), name=f"fender-health:{check.name}"
            )
            with self._lock:
                self._tasks.add(task)
            task.add_done_callback(self._forget_task)
        # A concurrent Future settles from whichever thread runs the call; deliver to this
        # caller's loop thread-safely. Not wrap_future(): cancelling one caller's wrapper would
        # cancel the shared future for every other caller.
        shared.add_done_callback(functools.partial(_deliver, loop, waiter))
        return waiter

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self._tasks.discard(task)

    async def _execute(self, check: Check, shared: concurrent.futures.Future[CheckOutcome]) -> None:
        started = self._clock()
        result: CheckResult | None = None
        try:
            result = await self._call(check)
        except Exception as exc:
            result = failure_result(exc)
        finally:
            if result is None:
                # Cancelled (the owning loop is shutting down) or a BaseException: release the
                # waiters on other loops and the single-flight slot, and cache nothing.
                aborted = CheckResult(Status.FAIL, "cancelled", details={"error": "Cancelled"})
                self._finish(check, shared, aborted, started, record=False)
        self._finish(check, shared, result, started, record=True)

    async def _call(self, check: Check) -> CheckResult:
        scope = asyncio.timeout(check.timeout)
        try:
            async with scope:
                value = check.func() if check.is_async else await self._in_thread(check)
                if inspect.isawaitable(value):  # an async client called from a sync wrapper
                    value = await value
        except TimeoutError:
            if scope.expired():
                return timeout_result(check.timeout)
            raise  # the check's own TimeoutError (a socket timeout): report its message
        return normalize(value)

    async def _in_thread(self, check: Check) -> object:
        with self._lock:
            if check.name in self._busy:
                return _STILL_RUNNING
            self._busy.add(check.name)
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._config.max_workers, thread_name_prefix="fender-health"
                )
            executor = self._executor
        # loop.run_in_executor() is submit() + wrap_future(); spelled out to get at the
        # concurrent future, whose done callback frees the check even when it was cancelled
        # before a thread picked it up. The context copy carries request/log context along.
        try:
            future = executor.submit(contextvars.copy_context().run, check.func)
        except RuntimeError as exc:
            self._release(check.name)
            # A pool shut down (close(), or the interpreter exiting: its pools stop before
            # atexit hooks run, while this loop may still refresh) says "...after shutdown".
            # Nothing was checked: no result, and no "fail" to report on the way out. Any
            # other refusal (no thread could start) is the check's failure, as before.
            if "shutdown" in str(exc):
                raise asyncio.CancelledError from None
            raise
        except BaseException:
            self._release(check.name)
            raise
        future.add_done_callback(lambda _: self._release(check.name))
        return await asyncio.wrap_future(future)

    def _release(self, name: str) -> None:
        with self._lock:
            self._busy.discard(name)

    def _outcome(self, check: Check, result: CheckResult, *, duration: float) -> CheckOutcome:
        return CheckOutcome(
            check=check, result=result, duration=duration, at=self._clock(), time=self._wall()
        )

    def _finish(
        self,
        check: Check,
        shared: concurrent.futures.Future[CheckOutcome],
        result: CheckResult,
        started: float,
        *,
        record: bool,
    ) -> None:
        outcome = self._outcome(check, result, duration=max(self._clock() - started, 0.0))
        with self._lock:
            previous = self._latest.get(check.name)
            if record and self._checks.get(check.name) is check:
                self._latest[check.name] = outcome
            entry = self._inflight.get(check.name)
            if entry is not None and entry[1] is shared:
                del self._inflight[check.name]
            listeners = tuple(self._listeners) if record else ()
        shared.set_result(outcome)
        if record:
            _log_transition(previous, outcome)
        for listener in listeners:
            try:
                listener(outcome)
            except Exception:
                logger.exception("health_listener_failed", extra={"check": check.name})

    def _private_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve, args=(loop,), name="fender-health-loop", daemon=True
                )
                thread.start()
                self._loop, self._loop_thread = loop, thread
                # A registry nobody holds any more (an app built per test and dropped) ends its
                # thread with it: nothing on the loop holds the registry between refreshes.
                weakref.finalize(self, _stop_loop, loop)
            return self._loop

    def _take_refresher(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None:
        with self._refresh_lock:
            entry, self._refresher = self._refresher, None
        return entry


async def _refresh_forever(ref: weakref.ref[HealthRegistry], interval: float) -> None:
    """Run every check every ``interval`` seconds while the registry lives.

    Holds the registry weakly between runs, so that the refresher never keeps a dropped
    registry (and the app around it) alive.
    """
    while True:
        registry = ref()
        if registry is None:
            return
        try:
            await registry.run()
        except Exception:  # run() contains check failures; this would be a fender bug
            logger.exception("health_refresh_failed")
        del registry
        await asyncio.sleep(interval)


def _stop_loop(loop: asyncio.AbstractEventLoop) -> None:
    with contextlib.suppress(RuntimeError):  # already closed
        loop.call_soon_threadsafe(loop.stop)


def _kinds(kind: KindSelector) -> frozenset[Kind] | None:
    if kind is None:
        return None
    items = (kind,) if isinstance(kind, str) else tuple(kind)
    try:
        return frozenset(Kind(item) for item in items)
    except ValueError:
        raise ConfigurationError("kind", kind, " / ".join(Kind)) from None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _deliver(
    loop: asyncio.AbstractEventLoop,
    waiter: asyncio.Future[CheckOutcome],
    shared: concurrent.futures.Future[CheckOutcome],
) -> None:
    def settle() -> None:
        if not waiter.done():
            waiter.set_result(shared.result())

    with contextlib.suppress(RuntimeError):  # the caller's loop closed: nobody waits now
        loop.call_soon_threadsafe(settle)


async def _spawn(coro: Any) -> asyncio.Task[None]:
    task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
        coro, name="fender-health-refresher"
    )
    return task


async def _settle(task: asyncio.Task[None]) -> None:
    await asyncio.wait({task})


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # Cancel what is still running (in-flight checks release their waiters on
        # cancellation) and close the loop, so no task or loop is left to the GC.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


def _log_transition(previous: CheckOutcome | None, outcome: CheckOutcome) -> None:
    """One log event when a check changes status (and when it first runs not passing)."""
    before = previous.status if previous is not None else None
    if outcome.status is before or (before is None and outcome.status is Status.PASS):
        return
    level = logging.INFO if outcome.status is Status.PASS else logging.WARNING
    logger.log(
        level,
        "health_check_status",
        extra={
            "check": outcome.name,
            "status": str(outcome.status),
            "previous": None if before is None else str(before),
            "output": outcome.result.output,
        },
    )
