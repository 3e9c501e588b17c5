"""Versions (a hybrid logical clock) and read-your-writes tokens.

A version is ``milliseconds since 2020-01-01 << 10 | counter``: it follows the wall clock, so
the last writer wins across instances, and never goes backwards in one process (the counter,
and :meth:`VersionClock.observe` of every version read, keep it ahead of what it has seen).
It stays under 2**53, so Redis's Lua (whose numbers are doubles) compares it exactly.

A token says which versions its holder wrote: ``key=version`` pairs, the newest
:data:`TOKEN_KEYS` kept, base64url-encoded so that it fits a cookie. A read presenting it is
served from a node holding at least that version of the key, or refused.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = [
    "COUNTER_BITS",
    "EPOCH_MS",
    "TOKEN_CHARS",
    "TOKEN_KEYS",
    "BadToken",
    "VersionClock",
    "decode_token",
    "encode_token",
    "remember",
]

EPOCH_MS: Final = 1_577_836_800_000  # 2020-01-01T00:00:00Z
COUNTER_BITS: Final = 10
TOKEN_KEYS: Final = 32
"""How many keys a token remembers (the newest writes); a cookie stays well under 4 KB."""
TOKEN_CHARS: Final = 3000
"""The longest token written: with the cookie's name and attributes, well under 4 KB."""
_MAX_TOKEN: Final = 4096


class BadToken(ValueError):  # noqa: N818  (the HTTP 400 it becomes)
    """A version token that is not one this service wrote."""


class VersionClock:
    """Hands out increasing versions; thread-safe."""

    def __init__(self, wall_ms: Callable[[], int] | None = None) -> None:
        """``wall_ms``: the wall clock in ms since the Unix epoch (injectable for tests)."""
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """A version greater than every version handed out or observed."""
        with self._lock:
            now = (self._wall_ms() - EPOCH_MS) << COUNTER_BITS
            self._last = max(now, self._last + 1)
            return self._last

    def observe(self, version: int) -> None:
        """Keep the clock ahead of ``version`` (seen on a node)."""
        with self._lock:
            self._last = max(self._last, version)


def encode_token(versions: dict[str, int]) -> str:
    """The token for ``versions`` (key to version)."""
    text = ",".join(f"{key}={version}" for key, version in versions.items())
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, int]:
    """Parse a token; raise :class:`BadToken` saying what is wrong."""
    if len(token) > _MAX_TOKEN:
        raise BadToken(f"longer than {_MAX_TOKEN} characters")
    try:
        padded = token + "=" * (-len(token) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadToken("not base64url") from None
    versions: dict[str, int] = {}
    for pair in filter(None, text.split(",")):
        key, sep, version = pair.partition("=")
        # ASCII digits only: isdigit() admits "²", which int() refuses (a ValueError, not a
        # BadToken), and isdecimal() other scripts' digits, which no version is written with.
        if not sep or not key or not (version.isascii() and version.isdecimal()):
            raise BadToken(f"not key=version pairs: {pair[:40]!r}")
        versions[key] = int(version)
    if len(versions) > TOKEN_KEYS:
        raise BadToken(f"more than {TOKEN_KEYS} keys")
    return versions


def remember(versions: dict[str, int], key: str, version: int) -> dict[str, int]:
    """``versions`` with ``key`` at ``version``: the newest keys that fit a token.

    At most :data:`TOKEN_KEYS` keys, and at most :data:`TOKEN_CHARS` characters once encoded
    (long keys fill a cookie before 32 of them do); the oldest versions go first.
    """
    merged = {k: v for k, v in versions.items() if k != key}
    merged[key] = max(version, versions.get(key, 0))
    newest = sorted(merged.items(), key=lambda kv: kv[1])[-TOKEN_KEYS:]
    while len(newest) > 1 and len(encode_token(dict(newest))) > TOKEN_CHARS:
        newest = newest[1:]
    return dict(newest)
