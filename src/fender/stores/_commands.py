"""Redis commands as data, and the two drivers that run flows of them against a client.

The store's decisions (and the rate limiter's) are sans-I/O generators, "flows" (the pattern
of ``httpx._auth``): a flow yields the commands it needs and is sent their replies, or has
their errors thrown in. :func:`drive` and :func:`adrive` are the only two places where a flow
meets a client: the sync and the asyncio shells share every flow and differ only in the
driver and the executor (:func:`execute` or :func:`aexecute`) they hand it.

Example:
    >>> def flow():
    ...     reply = yield (op("get", "k"),)
    ...     return reply.upper()
    >>> drive(flow(), lambda command: b"value")
    b'VALUE'
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any, Final, TypeAlias, TypeVar

__all__ = [
    "DELETE_MATCHING",
    "Command",
    "Flow",
    "Op",
    "aexecute",
    "execute",
    "glob_escape",
    "op",
]

C = TypeVar("C")
T = TypeVar("T")

Op: TypeAlias = tuple[str, tuple[Any, ...], dict[str, Any]]
"""One Redis command: the client method name, its positional and its keyword arguments."""
Command: TypeAlias = tuple[Op, ...]
"""What a store flow asks the shell to run: one op, or several sent as one pipeline."""
Flow: TypeAlias = Generator[Command, Any, T]
"""A store operation: yields commands, returns the operation's result."""

DELETE_MATCHING: Final = "_delete_matching"
"""A pseudo-command: delete every key matching the glob pattern argument (SCAN + UNLINK)."""
_SCAN_BATCH: Final = 500
_GLOB_SPECIALS: Final = re.compile(r"([*?\[\]\\])")


def op(name: str, *args: Any, **kwargs: Any) -> Op:
    """The command ``client.name(*args, **kwargs)``."""
    return (name, args, kwargs)


def glob_escape(prefix: str) -> str:
    """The SCAN pattern matching the keys that start with ``prefix``."""
    return _GLOB_SPECIALS.sub(r"\\\1", prefix) + "*"


def execute(client: Any, command: Command) -> Any:
    """Run ``command`` on a sync redis-py client; several ops go as one pipeline."""
    if len(command) == 1:
        name, args, kwargs = command[0]
        if name == DELETE_MATCHING:
            return _delete_matching(client, args[0])
        return getattr(client, name)(*args, **kwargs)
    pipe = client.pipeline(transaction=False)
    for name, args, kwargs in command:
        getattr(pipe, name)(*args, **kwargs)
    return pipe.execute()


async def aexecute(client: Any, command: Command) -> Any:
    """:func:`execute` on a ``redis.asyncio`` client."""
    if len(command) == 1:
        name, args, kwargs = command[0]
        if name == DELETE_MATCHING:
            return await _adelete_matching(client, args[0])
        return await getattr(client, name)(*args, **kwargs)
    pipe = client.pipeline(transaction=False)
    for name, args, kwargs in command:
        getattr(pipe, name)(*args, **kwargs)
    return await pipe.execute()


def _delete_matching(client: Any, pattern: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=_SCAN_BATCH):
        batch.append(key)
        if len(batch) >= _SCAN_BATCH:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


async def _adelete_matching(client: Any, pattern: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=pattern, count=_SCAN_BATCH):
        batch.append(key)
        if len(batch) >= _SCAN_BATCH:
            deleted += await client.unlink(*batch)
            batch = []
    if batch:
        deleted += await client.unlink(*batch)
    return int(deleted)
