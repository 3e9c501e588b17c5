"""A resilient store's background prober: a thread for the sync store, a task for asyncio.

While the store has work (Redis to watch during an outage, or journal entries to settle
after it), the prober runs the store's probe (see :mod:`fender.stores._healing`) every
``interval`` seconds, until a probe reports nothing left. User calls never wait on it; each
of them wakes the prober when the store has work. Both flavours keep the same rules, so that
the store heals in both:

* a prober that ends while the store has work again (a write journaled after the last probe)
  starts again at once;
* a stopped prober never starts again;
* a crashed probe is logged and the prober carries on.

The asyncio prober is a task on the loop of the call that woke it; if that loop closed under
it, the next call starts one on its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable

__all__ = ["TaskProber", "ThreadProber"]

logger = logging.getLogger("fender.stores")


class ThreadProber:
    """The prober as a daemon thread.

    Args:
        store: The store's name (the thread's name and the log events').
        interval: Seconds between probes.
        probe: One probe; returns True when there is nothing left to probe for.
        needed: True while the store has work for a prober.
    """

    def __init__(
        self,
        *,
        store: str,
        interval: float,
        probe: Callable[[], bool],
        needed: Callable[[], bool],
    ) -> None:
        """Prepare the prober; it starts on the first :meth:`wake`."""
        self._store = store
        self._interval = interval
        self._probe = probe
        self._needed = needed
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def running(self) -> bool:
        """True while the prober's thread is alive."""
        return self._thread is not None

    def wake(self) -> None:
        """Start the prober, unless it runs already or was stopped."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None or self._stopped.is_set():
                return
            thread = threading.Thread(
                target=self._run, name=f"fender-{self._store}-probe", daemon=True
            )
            self._thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop the prober for good and wait (5 s at most) for its thread to end."""
        self._stopped.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5.0)

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self._interval):
                try:
                    if self._probe():
                        break
                except Exception:
                    logger.exception("redis probe crashed", extra={"store": self._store})
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None
        if self._needed():
            self.wake()


class TaskProber:
    """The prober as an asyncio task; same arguments as :class:`ThreadProber`.

    ``probe`` returns an awaitable.
    """

    def __init__(
        self,
        *,
        store: str,
        interval: float,
        probe: Callable[[], Awaitable[bool]],
        needed: Callable[[], bool],
    ) -> None:
        """Prepare the prober; it starts on the first :meth:`wake`."""
        self._store = store
        self._interval = interval
        self._probe = probe
        self._needed = needed
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def running(self) -> bool:
        """True while the prober's task is alive."""
        return self._task is not None

    def wake(self) -> None:
        """Start the prober on the running loop, unless it runs already or was stopped."""
        task = self._task
        if self._stopped or (task is not None and not task.get_loop().is_closed()):
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"fender-{self._store}-probe"
        )

    async def stop(self) -> None:
        """Stop the prober for good: cancel its task and wait for it to end."""
        self._stopped = True
        task = self._task
        if task is not None and not task.get_loop().is_closed():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        this = asyncio.current_task()
        try:
            while True:
                await asyncio.sleep(self._interval)
                try:
                    if await self._probe():
                        break
                except Exception:
                    logger.exception("redis probe crashed", extra={"store": self._store})
        finally:
            # A task of a loop closed under it is replaced, and may only finish later (at
            # garbage collection): it must not forget its successor.
            if self._task is this:
                self._task = None
        if self._needed():
            self.wake()
