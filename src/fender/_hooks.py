"""Startup and shutdown hooks: what a subsystem registers, and how they are called.

Each subsystem built from settings registers its own start and close with the runtime's
:class:`Hooks`; the runtime calls them and never asks what kind of object it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["Hook", "Hooks", "call", "call_capped", "hook_name"]

Hook = Callable[[], Awaitable[None] | None]
"""A startup or shutdown hook: a plain function or a coroutine function, no arguments."""


class Hooks(Protocol):
    """Where a subsystem registers what runs when the server starts and stops."""

    def on_startup(self, hook: Hook) -> Hook:
        """Run ``hook`` when the server starts (in registration order)."""
        ...

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run ``hook`` at shutdown (in the reverse order of registration)."""
        ...


async def call(hook: Hook) -> None:
    """Call ``hook``, awaiting what it returns when that is awaitable."""
    result = hook()
    if inspect.isawaitable(result):
        await result


async def call_capped(hook: Hook, cap: float) -> None:
    """Run a shutdown hook for at most ``cap`` seconds.

    One stuck close must not eat the whole graceful period. A sync hook runs in a daemon
    thread of its own, left behind if it overruns: in the loop's default executor it would
    hold up the loop's own shutdown.
    """
    if inspect.iscoroutinefunction(hook):
        await asyncio.wait_for(call(hook), cap)
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():
            outcome()

    def run() -> None:
        try:
            result = hook()
        except BaseException as exc:  # handed to the awaiting coroutine
            report: Callable[[], None] = functools.partial(done.set_exception, exc)
        else:
            report = functools.partial(done.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, report)

    threading.Thread(target=run, name="fender-shutdown-hook", daemon=True).start()
    result = await asyncio.wait_for(done, cap)
    if inspect.isawaitable(result):
        await asyncio.wait_for(result, cap)


def hook_name(hook: Any) -> str:
    """A hook's qualified name, for the log line that says which one failed."""
    return str(getattr(hook, "__qualname__", repr(hook)))
