"""The health registry: the checks of an application, run on demand or in the background.

One async runner (:meth:`HealthRegistry.run`, see :mod:`._runner`) holds the whole algorithm:
every check at once, each within its timeout, one call in flight per check, results cached for
``cache_ttl``. The sync entry point (:meth:`HealthRegistry.run_sync`, for WSGI) and the
background refresher (:mod:`._background`) drive that same coroutine; there is no second
implementation. :meth:`HealthRegistry.snapshot` returns the latest results without I/O.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, Unpack, overload

from fender._clock import Clock, monotonic
from fender._status import Status
from fender.errors import ConfigurationError
from fender.health._background import LoopThread, Refresher
from fender.health._check import Check, CheckFunc, CheckOutcome, CheckResult, HealthReport, Kind
from fender.health._options import CheckOptions, CheckOptionsDict, decorate
from fender.health._runner import CheckRunner, Listener

__all__ = ["HealthConfig", "HealthRegistry", "KindSelector"]

F = TypeVar("F", bound=Callable[..., Any])
KindSelector = Kind | str | Iterable[Kind | str] | None
"""One kind, several kinds, or None for all."""

# How long run_sync waits beyond the deadline before giving up on the loop thread itself
# (the runner honours the deadline, so this only fires if that thread is wedged).
_SYNC_GRACE = 1.0
_NOT_YET = CheckResult(Status.FAIL, "not checked yet", details={"error": "NoResult"})


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
        self._runner = CheckRunner(
            lock=self._lock,
            registered=self._checks,
            max_workers=self._config.max_workers,
            clock=clock,
            wall_clock=wall_clock,
        )
        self._private = LoopThread(self)
        self._refresher = Refresher(self, self._config.refresh_interval, self._private)

    @property
    def config(self) -> HealthConfig:
        """The configuration this registry runs with."""
        return self._config

    # --- registration ---------------------------------------------------------------------------

    def add(self, target: Check | CheckFunc, **options: Unpack[CheckOptionsDict]) -> Check:
        """Register a check: a callable, or a prepared :class:`Check` (e.g. from builtins).

        Options (:class:`CheckOptions`: name, kind, critical, timeout, tags, cache_ttl,
        component, component_type, measurement) left out or None keep the Check's value (or
        its default); given ones override it. The name defaults to the callable's ``__name__``.

        Returns:
            The registered Check.

        Raises:
            ConfigurationError: an invalid option, or a name already registered.
        """
        return self._register(target, CheckOptions(**options))

    @overload
    def check(self, name: F, /) -> F: ...

    @overload
    def check(
        self, name: str | None = None, /, **options: Unpack[CheckOptionsDict]
    ) -> Callable[[F], F]: ...

    def check(
        self, name: str | F | None = None, /, **options: Unpack[CheckOptionsDict]
    ) -> F | Callable[[F], F]:
        """Decorator form of :meth:`add`, bare or with options; returns the function unchanged.

        Example:
            >>> registry = HealthRegistry()
            >>> @registry.check
            ... def cache() -> bool:
            ...     return True
            >>> @registry.check("search")
            ... def search_index() -> bool:
            ...     return True
            >>> @registry.check(name="db", critical=True, timeout=1.0, tags=["storage"])
            ... async def db() -> bool:
            ...     return True
            >>> [check.name for check in registry.select()]
            ['cache', 'search', 'db']
        """
        return decorate(name, options, self._register)

    def _register(self, target: Check | CheckFunc, options: CheckOptions) -> Check:
        check = options.apply(target)
        with self._lock:
            if check.name in self._checks:
                raise ConfigurationError("name", check.name, "a name not already registered")
            self._checks[check.name] = check
        return check

    def remove(self, name: str) -> bool:
        """Unregister the check ``name`` and forget its results; False if it was not there."""
        with self._lock:
            self._runner.latest.pop(name, None)
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
        self._runner.add_listener(listener)

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
        return await self._runner.run(self.select(kind=kind, tags=tags), limit)

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
        loop = self._private.loop()
        if threading.current_thread() is self._private.thread:
            raise RuntimeError("run_sync() called on the registry's own loop; await run()")
        future = asyncio.run_coroutine_threadsafe(
            self.run(kind=kind, tags=tags, deadline=limit), loop
        )
        try:
            return future.result(timeout=limit + _SYNC_GRACE)
        except TimeoutError:
            future.cancel()
            return self._runner.missed(self.select(kind=kind, tags=tags), limit)

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
            latest = dict(self._runner.latest)
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

    # --- background refresh and shutdown --------------------------------------------------------

    def start(self) -> None:
        """Start refreshing every check every ``refresh_interval`` seconds; idempotent.

        Called inside a running event loop (an ASGI lifespan), the refresher is a task on that
        loop, so async checks use the app's loop-bound clients. Called elsewhere (WSGI, a
        gunicorn hook), it runs on the registry's private loop thread.
        """
        self._refresher.start()

    def stop(self) -> None:
        """Stop the refresher; idempotent.

        Waits for it to end when it runs on the private loop. Called on the refresher's own
        loop it can only cancel it: ``await astop()`` there to wait.
        """
        self._refresher.stop()

    async def astop(self) -> None:
        """Stop the refresher and wait until it has ended (for an ASGI lifespan shutdown)."""
        await self._refresher.astop()

    def close(self) -> None:
        """Stop the refresher, the private loop thread and the thread pool.

        Does not wait for sync checks still running in threads (a hung one cannot be
        interrupted). The registry stays usable: threads start again on the next use.
        """
        self.stop()
        self._private.close()
        self._runner.close()

    async def aclose(self) -> None:
        """:meth:`astop`, then :meth:`close`."""
        await self.astop()
        self.close()


def _kinds(kind: KindSelector) -> frozenset[Kind] | None:
    if kind is None:
        return None
    items = (kind,) if isinstance(kind, str) else tuple(kind)
    try:
        return frozenset(Kind(item) for item in items)
    except ValueError:
        raise ConfigurationError("kind", kind, " / ".join(Kind)) from None
