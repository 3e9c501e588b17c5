"""What one process keeps for every started app: the drain watch, monitor ticks, exit hook.

Both hold the apps weakly: an app factory called once per test must leave neither a thread
nor a reference behind per app.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable
from operator import methodcaller
from typing import Generic, Protocol, TypeVar

from fender.monitor import TICK_SECONDS, Monitor
from fender.observability._logging import get_logger

__all__ = [
    "DRAIN_POLL_SECONDS",
    "DRAIN_WATCH",
    "MONITOR_TICK",
    "Started",
    "call_weak",
    "forget_at_exit",
    "off_the_loop",
    "shut_down_at_exit",
]

DRAIN_POLL_SECONDS = 0.5
T = TypeVar("T")
_logger = get_logger("fender")


class Started(Protocol):
    """A started app's runtime, as the process-wide watchers see it."""

    def poll_drain(self) -> bool:
        """One look at the drain flag; False once there is nothing more to watch for."""
        ...

    def shutdown_sync(self) -> None:
        """Shut down, blocking."""
        ...


class _Watch(Generic[T]):
    """One thread per process calls ``look(item)`` every ``interval`` for every item watched.

    Shared, and holding the items weakly: an app factory called once per test must not leave a
    thread behind per app. A fork (gunicorn workers) starts its own thread on first use. An
    item whose look returns False is no longer watched.
    """

    def __init__(self, name: str, interval: float, look: Callable[[T], bool]) -> None:
        self.name = name
        self.interval = interval
        self._look = look
        self._lock = threading.Lock()
        self._items: weakref.WeakSet[T] = weakref.WeakSet()
        self._pid: int | None = None
        self._never = threading.Event()  # waited on for the poll interval; never set

    def watch(self, item: T) -> None:
        with self._lock:
            self._items.add(item)
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name=self.name, daemon=True).start()

    def forget(self, item: T) -> None:
        with self._lock:
            self._items.discard(item)

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            self._never.wait(self.interval)
            self._poll_all()

    def _poll_all(self) -> None:
        # A frame of its own: no item stays referenced by this thread between polls.
        with self._lock:
            items = list(self._items)
        for item in items:
            try:
                watching = self._look(item)
            except Exception:
                _logger.exception("watch_failed", watch=self.name)
                watching = True
            if not watching:
                self.forget(item)


DRAIN_WATCH: _Watch[Started] = _Watch(
    "fender-drain-watch", DRAIN_POLL_SECONDS, methodcaller("poll_drain")
)
MONITOR_TICK: _Watch[Monitor] = _Watch("fender-monitor", TICK_SECONDS, methodcaller("poll"))
"""Ticks every started app's monitor once a second (sampling, alerts)."""
_AT_EXIT: weakref.WeakSet[Started] = weakref.WeakSet()


def shut_down_at_exit(runtime: Started) -> None:
    """Shut ``runtime`` down at interpreter exit (WSGI has no lifespan), if it is still alive.

    One atexit hook per process, holding the runtimes weakly: a hook per app would keep
    every app a test suite ever built alive until exit.
    """
    if not _AT_EXIT:
        import atexit

        atexit.unregister(_shut_down_all)
        atexit.register(_shut_down_all)
    _AT_EXIT.add(runtime)


def _shut_down_all() -> None:
    for runtime in list(_AT_EXIT):
        runtime.shutdown_sync()


def off_the_loop(function: Callable[[], None]) -> None:
    """Call ``function`` here, or on a thread of its own when this thread's event loop runs.

    ``asyncio.run()`` refuses a thread whose event loop is running (an async test calling
    Flask's test client, a notebook), and what starts there must not land on that loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        function()
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            function()
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="fender-start", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def call_weak(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    """Call a weakly held bound method, if its object is still alive."""
    bound = method()
    if bound is not None:
        bound()


def forget_at_exit(runtime: Started) -> None:
    """Nothing to shut down at exit for ``runtime`` any more (it has shut down)."""
    _AT_EXIT.discard(runtime)
