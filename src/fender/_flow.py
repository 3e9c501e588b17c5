"""The one driver of fender's sans-I/O generators, in a sync and an async flavour.

An algorithm that needs I/O midway (a Redis call, a health run) is written once as a
generator: it yields what it needs done, receives the reply (or the error, thrown in), and
returns its result. :func:`drive` runs it blocking; :func:`adrive` on an event loop. The
algorithm is never copied into an async twin (see STYLE.md, the anti-model).

Example:
    >>> def double_of_reply() -> Generator[str, int, int]:
    ...     reply = yield "ask"
    ...     return 2 * reply
    >>> drive(double_of_reply(), lambda command: 21)
    42
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

__all__ = ["adrive", "drive"]

C = TypeVar("C")
T = TypeVar("T")


def drive(flow: Generator[C, Any, T], execute: Callable[[C], Any]) -> T:
    """Run ``flow``: each command it yields through ``execute``, the reply (or error) sent back.

    Returns:
        The flow's return value.
    """
    try:
        command = next(flow)
        while True:
            try:
                reply = execute(command)
            except BaseException as exc:
                command = flow.throw(exc)
            else:
                command = flow.send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def adrive(flow: Generator[C, Any, T], execute: Callable[[C], Awaitable[Any]]) -> T:
    """:func:`drive` for asyncio: ``execute`` returns an awaitable."""
    try:
        command = next(flow)
        while True:
            try:
                reply = await execute(command)
            except BaseException as exc:
                command = flow.throw(exc)
            else:
                command = flow.send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result
