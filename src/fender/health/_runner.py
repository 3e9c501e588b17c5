"""Running checks: all at once, each within its timeout, one call in flight per check.

Per run, every selected check starts at once: async callables as tasks on the running loop,
sync callables on a bounded thread pool. Each check has its own timeout and the run a global
deadline; a timeout or an exception becomes a failing result, never an exception out of here.

Single flight is per check, which covers "per group/kind": while a check is in flight, every
caller (any selection, any event loop, any thread) waits for that one call instead of starting
another. Results are kept per check (:attr:`CheckRunner.latest`) and reused for ``cache_ttl``
seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from fender._clock import Clock
from fender._status import Status
from fender.health._check import (
    Check,
    CheckOutcome,
    CheckResult,
    HealthReport,
    deadline_result,
    failure_result,
    normalize,
    timeout_result,
)

__all__ = ["CheckRunner", "Listener"]

logger = logging.getLogger("fender.health")

Listener = Callable[[CheckOutcome], None]
"""Called with every fresh outcome (not cache hits), e.g. to export metrics."""

_STILL_RUNNING = CheckResult(
    Status.FAIL,
    "the previous call has not returned yet; not started again",
    details={"error": "StillRunning"},
)


class CheckRunner:
    """Runs checks concurrently with timeouts, single flight and a result cache.

    Args:
        lock: guards :attr:`latest` and the runner's state; shared with the registry, so that
            a check removed there leaves no result recorded here.
        registered: the registry's checks by name (read holding ``lock``); only a check
            still registered gets its result recorded. A mapping, not a callback into the
            registry: the runner must not hold the registry, which ends its loop thread when
            it is dropped (by reference count, not at a later collection).
        max_workers: threads for sync checks.
        clock: monotonic seconds for durations and cache ages.
        wall_clock: epoch seconds, shown with results.
    """

    def __init__(
        self,
        *,
        lock: threading.Lock,
        registered: Mapping[str, Check],
        max_workers: int,
        clock: Clock,
        wall_clock: Callable[[], float],
    ) -> None:
        """No thread starts until a sync check runs."""
        self._lock = lock
        self._registered = registered
        self._max_workers = max_workers
        self._clock = clock
        self._wall = wall_clock
        self.latest: dict[str, CheckOutcome] = {}
        """The last recorded outcome of each check, by name (guarded by the lock)."""
        self._inflight: dict[str, tuple[Check, concurrent.futures.Future[CheckOutcome]]] = {}
        self._busy: set[str] = set()
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(outcome)`` after every fresh result; its exceptions are logged."""
        with self._lock:
            self._listeners.append(listener)

    async def run(self, checks: Sequence[Check], deadline: float) -> HealthReport:
        """Run ``checks`` concurrently within ``deadline`` seconds and aggregate them."""
        loop = asyncio.get_running_loop()
        started, wall = self._clock(), self._wall()
        waiters = [self._waiter(check, loop) for check in checks]
        if waiters:
            await asyncio.wait(waiters, timeout=deadline)
        outcomes: list[CheckOutcome] = []
        for check, waiter in zip(checks, waiters, strict=True):
            if waiter.done():
                outcomes.append(waiter.result())
            else:
                # Only this caller's future is cancelled: the shared call goes on and its
                # result lands in the cache and the snapshot.
                waiter.cancel()
                outcomes.append(self.outcome(check, deadline_result(deadline), duration=deadline))
        return HealthReport.from_outcomes(
            outcomes, time=wall, duration=max(self._clock() - started, 0.0)
        )

    def missed(self, checks: Sequence[Check], deadline: float) -> HealthReport:
        """A report of ``checks`` all failing the run's ``deadline``."""
        outcomes = [self.outcome(c, deadline_result(deadline), duration=deadline) for c in checks]
        return HealthReport.from_outcomes(outcomes, time=self._wall(), duration=deadline)

    def close(self) -> None:
        """Shut the thread pool down, without waiting for sync checks still running."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _waiter(
        self, check: Check, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[CheckOutcome]:
        """A future on ``loop`` for this check's outcome: cached, in flight, or a new call."""
        waiter: asyncio.Future[CheckOutcome] = loop.create_future()
        with self._lock:
            latest = self.latest.get(check.name)
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
                    max_workers=self._max_workers, thread_name_prefix="fender-health"
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

    def outcome(self, check: Check, result: CheckResult, *, duration: float) -> CheckOutcome:
        """An outcome of ``check`` finishing now."""
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
        outcome = self.outcome(check, result, duration=max(self._clock() - started, 0.0))
        with self._lock:
            previous = self.latest.get(check.name)
            if record and self._registered.get(check.name) is check:
                self.latest[check.name] = outcome
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
