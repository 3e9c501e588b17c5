"""One process's request series, in a fixed block of memory another process can read.

The block (a file in the monitor directory under gunicorn, plain memory otherwise) holds:

* a header: magic, layout version, the owner's pid, the base second all stamps count from, the
  number of routes named;
* the service ring: 900 buckets of one second (15 minutes), each a stamp, requests, 5xx,
  rate-limit rejections, two gauges (memory used in permille + 1, open breakers + 1; 0 means no
  sample), the requests slower than the p99 alert's threshold (which makes that alert exact,
  see :mod:`fender.monitor._histogram`) and the latency histogram;
* :data:`MAX_ROUTES` route slots: a name and a ring of 15 one-minute buckets (stamp, requests,
  5xx, histogram). Routes past the slots count under ``other``.

A bucket is reused when its second comes round again: zeroed, then stamped, so that a reader
(which checks the stamp) never takes a half-reset bucket for the current one. Writes are plain
stores under a lock of the owner's threads; a reader in another process may see a count one
request behind, never a torn layout (int32 stores are atomic on every platform we run on).
"""

from __future__ import annotations

import array
import contextlib
import math
import mmap
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from fender.monitor._histogram import BINS, FLOOR, PER_OCTAVE

__all__ = [
    "MAX_ROUTES",
    "OTHER_ROUTE",
    "ROUTE_MINUTES",
    "SECONDS",
    "Rings",
    "read_rings",
]

SECONDS: Final = 900
"""The service ring's one-second buckets: 15 minutes."""
ROUTE_MINUTES: Final = 15
"""A route ring's one-minute buckets."""
MAX_ROUTES: Final = 64
"""Route slots a process names; later routes count under :data:`OTHER_ROUTE`."""
OTHER_ROUTE: Final = "other"
_NAME_BYTES: Final = 192

_MAGIC: Final = 0x464E_4452  # "FNDR"
_VERSION: Final = 2
# Header (int32 words): magic, version, pid, base (low, high), routes named; padded to 16.
_HEADER: Final = 16
_BASE_BITS: Final = 30  # the base second in two words, each well inside an int32
_BASE_MASK: Final = (1 << _BASE_BITS) - 1
# Service bucket: stamp, requests, errors, rejected, memory permille + 1, open breakers + 1,
# slower than the threshold, bins.
REQUESTS, ERRORS, REJECTED, MEMORY, BREAKERS, SLOW = 1, 2, 3, 4, 5, 6
_SVC_BINS: Final = 7
SVC_WIDTH: Final = _SVC_BINS + BINS
# Route bucket: stamp, requests, errors, bins.
_RT_BINS: Final = 3
RT_WIDTH: Final = _RT_BINS + BINS
_NAME_WORDS: Final = _NAME_BYTES // 4
_SLOT: Final = _NAME_WORDS + ROUTE_MINUTES * RT_WIDTH
_SVC_START: Final = _HEADER
_ROUTES_START: Final = _SVC_START + SECONDS * SVC_WIDTH
WORDS: Final = _ROUTES_START + MAX_ROUTES * _SLOT
SIZE: Final = WORDS * 4
_LAST_BIN: Final = BINS - 1
_log2 = math.log2
_ceil = math.ceil
_SVC_ZERO: Final = array.array("i", bytes(SVC_WIDTH * 4))
_RT_ZERO: Final = array.array("i", bytes(RT_WIDTH * 4))


class Rings:
    """The series of one process: written by its owner, read by anyone (:func:`read_rings`)."""

    def __init__(self, buffer: memoryview, *, owner: bool = False) -> None:
        """Over ``buffer`` (:data:`SIZE` bytes); ``owner``: this process writes it."""
        self._buffer = buffer
        self.words = buffer.cast("i")
        self.pid = self.words[2]
        self.base = self.words[3] + (self.words[4] << _BASE_BITS)
        self._lock = threading.Lock()
        self._second = -1
        self._bucket = _SVC_START
        self._routes: dict[str, int] = {}
        self._base_minute = self.base // 60
        self._minute = -1
        self._current: dict[str, int] = {}  # route -> its bucket of the current minute
        self.slow = math.inf  # seconds: a request longer counts as slow (set by create())
        if owner:
            for slot in range(self.words[5]):
                self._routes[self.route_name(slot)] = slot

    @classmethod
    def create(cls, path: Path | None, base: int, slow: float = math.inf) -> Rings:
        """A new block for this process: in ``path`` (shared) or in memory (``None``).

        ``slow``: seconds past which a request counts as slow (the p99 alert's threshold).
        Raises OSError when the file cannot be made whole (a full disk or tmpfs): its blocks
        are allocated here, so that a write to the mapping later cannot fault (SIGBUS).
        """
        header = array.array("i", [0] * _HEADER)
        low, high = base & _BASE_MASK, base >> _BASE_BITS
        header[0:6] = array.array("i", [_MAGIC, _VERSION, os.getpid(), low, high, 0])
        if path is None:
            # Anonymous pages, not a bytearray: the kernel's zero pages cost no memory until a
            # bucket is written, where a bytearray's ~600 KB are all touched at once.
            buffer = memoryview(mmap.mmap(-1, SIZE))
            buffer[: _HEADER * 4] = header.tobytes()
            rings = cls(buffer, owner=True)
            rings.slow = slow
            return rings
        # Written whole, then renamed: a reader never maps a file shorter than the layout.
        partial = path.with_name(path.name + ".new")
        with partial.open("wb") as file:
            file.write(header.tobytes())
            file.truncate(SIZE)
            os.posix_fallocate(file.fileno(), 0, SIZE)
        partial.replace(path)
        rings = cls(_mapped(path, writable=True), owner=True)
        rings.slow = slow
        return rings

    # --- writing (the owner) --------------------------------------------------------------------

    def _roll(self, second: int) -> None:
        """Make ``second``'s bucket current (zeroed first when it held an older second)."""
        start = _SVC_START + (second % SECONDS) * SVC_WIDTH
        stamp = second - self.base
        words = self.words
        if words[start] != stamp:
            words[start : start + SVC_WIDTH] = _SVC_ZERO
            words[start] = stamp
        self._second, self._bucket = second, start
        minute = second // 60 - self._base_minute
        if minute != self._minute:
            self._minute = minute
            self._current.clear()  # each route's bucket of the new minute, looked up again

    def _route_bucket(self, route: str) -> int:
        """The start of ``route``'s bucket of the current minute (zeroed if it held another)."""
        slot = self._routes.get(route)
        if slot is None:
            slot = self._name(route)
        minute = self._minute
        start = _ROUTES_START + slot * _SLOT + _NAME_WORDS + (minute % ROUTE_MINUTES) * RT_WIDTH
        words = self.words
        if words[start] != minute:
            words[start : start + RT_WIDTH] = _RT_ZERO
            words[start] = minute
        self._current[route] = start
        return start

    def record(self, route: str, status: int, seconds: float, now: float) -> None:
        """One finished request of ``route`` (a template) at wall time ``now``.

        The hot path (about a microsecond): the bin inlined, each route's current bucket
        looked up once a minute, not computed per request.
        """
        if seconds <= FLOOR:
            index = 0
        else:
            index = _ceil(_log2(seconds / FLOOR) * PER_OCTAVE)
            if index > _LAST_BIN:  # noqa: PLR1730  (a branch: min() is a call on the hot path)
                index = _LAST_BIN
        second = int(now)
        words = self.words
        with self._lock:
            if second != self._second:
                self._roll(second)
            bucket = self._bucket
            start = self._current.get(route)
            if start is None:
                start = self._route_bucket(route)
            words[bucket + REQUESTS] += 1
            words[bucket + _SVC_BINS + index] += 1
            words[start + 1] += 1
            words[start + _RT_BINS + index] += 1
            if status >= 500:  # noqa: PLR2004  (server errors)
                words[bucket + ERRORS] += 1
                words[start + 2] += 1
            if seconds > self.slow:
                words[bucket + SLOW] += 1

    def rejected(self, now: float) -> None:
        """One request refused by a rate limit."""
        with self._lock:
            second = int(now)
            if second != self._second:
                self._roll(second)
            self.words[self._bucket + REJECTED] += 1

    def sample(self, now: float, memory_ratio: float | None, open_breakers: int) -> None:
        """The gauges of ``now``'s second: memory used (share of the worker's) and breakers."""
        with self._lock:
            second = int(now)
            if second != self._second:
                self._roll(second)
            bucket = self._bucket
            if memory_ratio is not None:
                self.words[bucket + MEMORY] = round(memory_ratio * 1000) + 1
            self.words[bucket + BREAKERS] = open_breakers + 1

    def _name(self, route: str) -> int:
        """The slot of a new route (``other`` once the slots are taken); under the lock."""
        count = self.words[5]
        if count >= MAX_ROUTES - 1 and route != OTHER_ROUTE:
            slot = self._routes.get(OTHER_ROUTE)
            return self._name(OTHER_ROUTE) if slot is None else slot
        start = _ROUTES_START + count * _SLOT
        encoded = route.encode("utf-8", "replace")[:_NAME_BYTES]
        name = array.array("i", encoded.ljust(_NAME_BYTES, b"\0"))
        self.words[start : start + _NAME_WORDS] = name
        self.words[5] = count + 1  # named last: a reader never sees a slot without its name
        self._routes[route] = count
        return count

    # --- reading ----------------------------------------------------------------------------------

    @property
    def route_count(self) -> int:
        """Routes named so far."""
        return min(self.words[5], MAX_ROUTES)

    def route_name(self, slot: int) -> str:
        """The name of route ``slot``."""
        start = (_ROUTES_START + slot * _SLOT) * 4
        raw = bytes(self._buffer[start : start + _NAME_BYTES])
        return raw.rstrip(b"\0").decode("utf-8", "replace")

    def second(self, second: int) -> memoryview | None:
        """The bucket of wall second ``second`` (stamp excluded), or None when not recorded."""
        start = _SVC_START + (second % SECONDS) * SVC_WIDTH
        if self.words[start] != second - self.base:
            return None
        return self.words[start + 1 : start + SVC_WIDTH]

    def minute(self, slot: int, minute: int) -> memoryview | None:
        """Route ``slot``'s bucket of wall minute ``minute`` (stamp excluded), or None."""
        relative = minute - self.base // 60
        start = _ROUTES_START + slot * _SLOT + _NAME_WORDS + (relative % ROUTE_MINUTES) * RT_WIDTH
        if self.words[start] != relative:
            return None
        return self.words[start + 1 : start + RT_WIDTH]

    def last_second(self) -> int:
        """The newest second any bucket holds (the base when none)."""
        stamps = self.words[_SVC_START:_ROUTES_START:SVC_WIDTH]
        return self.base + max(stamps)

    def close(self) -> None:
        """Release the buffer (a mapped file is unmapped)."""
        with contextlib.suppress(BufferError):
            self.words.release()
            self._buffer.release()


def _mapped(path: Path, *, writable: bool) -> memoryview:
    with path.open("r+b" if writable else "rb") as file:
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        return memoryview(mmap.mmap(file.fileno(), SIZE, access=access))


def read_rings(directory: Path) -> Iterator[Rings]:
    """The blocks in ``directory`` (of live and exited processes), mapped read-only."""
    for path in sorted(directory.glob("rings_*.bin")):
        try:
            if path.stat().st_size != SIZE:
                continue
            rings = Rings(_mapped(path, writable=False))
        except (OSError, ValueError):  # removed meanwhile, or not ours
            continue
        if rings.words[0] != _MAGIC or rings.words[1] != _VERSION:
            rings.close()
            continue
        yield rings
