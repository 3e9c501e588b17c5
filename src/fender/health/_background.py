"""Where health checks run when no caller's loop is there: a private loop thread, the refresher.

:class:`LoopThread` is the registry's own event loop, on a daemon thread started on first use:
``run_sync()`` (WSGI) and a refresher started outside a loop run there. :class:`Refresher`
runs every check every ``refresh_interval`` seconds, on the caller's running loop (an ASGI
lifespan, so async checks use the app's loop-bound clients) or else on that private loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol

__all__ = ["LoopThread", "Refresher", "Runs", "running_loop"]

logger = logging.getLogger("fender.health")

_JOIN_TIMEOUT = 5.0


class Runs(Protocol):
    """What the refresher drives: a registry."""

    def run(self) -> Awaitable[object]:
        """Run every check once."""
        ...


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LoopThread:
    """A private event loop on a daemon thread, started on first use and ended by close().

    Args:
        owner: the object the loop serves; when it is collected, the loop stops with it.
    """

    def __init__(self, owner: object) -> None:
        """Nothing starts until :meth:`loop` is called."""
        self._owner = weakref.ref(owner)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        """The thread running the loop, if it runs."""
        return self._thread

    @property
    def current(self) -> asyncio.AbstractEventLoop | None:
        """The loop if it has started, without starting it."""
        return self._loop

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started now if it is not running."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve, args=(loop,), name="fender-health-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                # An owner nobody holds any more (an app built per test and dropped) ends its
                # thread with it: nothing on the loop holds the owner between refreshes.
                owner = self._owner()
                if owner is not None:
                    weakref.finalize(owner, _stop_loop, loop)
            return self._loop

    def close(self) -> None:
        """Stop the loop and join its thread (unless called on it); it starts again on use."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None:
            _stop_loop(loop)
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=_JOIN_TIMEOUT)


class Refresher:
    """Runs every check every ``interval`` seconds in the background; start and stop idempotent.

    Args:
        registry: what to run, held weakly: the refresher never keeps a dropped registry (and
            the app around it) alive.
        interval: seconds between two runs.
        private: the loop to run on when started outside a running loop.
    """

    def __init__(self, registry: Runs, interval: float, private: LoopThread) -> None:
        """Nothing runs until :meth:`start`."""
        self._registry = weakref.ref(registry)
        self._interval = interval
        self._private = private
        self._lock = threading.Lock()
        self._running: tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None = None

    def start(self) -> None:
        """Start refreshing: on the running loop if there is one, else on the private loop."""
        with self._lock:
            if self._running is not None:
                return
            loop = running_loop()
            refresh = _refresh_forever(self._registry, self._interval)
            if loop is not None:
                task = loop.create_task(refresh, name="fender-health-refresher")
            else:
                loop = self._private.loop()
                spawn = asyncio.run_coroutine_threadsafe(_spawn(refresh), loop)
                task = spawn.result(timeout=_JOIN_TIMEOUT)
            self._running = (loop, task)

    def stop(self) -> None:
        """Stop refreshing; waits for the end when it runs on the private loop."""
        entry = self._take()
        if entry is None:
            return
        loop, task = entry
        if running_loop() is loop:
            task.cancel()
            return
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # that loop is already closed, and the task with it
            return
        if loop is self._private.current:
            settle = asyncio.run_coroutine_threadsafe(_settle(task), loop)
            settle.result(timeout=_JOIN_TIMEOUT)

    async def astop(self) -> None:
        """Stop refreshing and wait until it has ended."""
        entry = self._take()
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

    def _take(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None:
        with self._lock:
            entry, self._running = self._running, None
        return entry


async def _refresh_forever(ref: weakref.ref[Runs], interval: float) -> None:
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


async def _spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name="fender-health-refresher")


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
