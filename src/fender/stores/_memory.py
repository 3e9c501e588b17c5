"""A bounded in-process key-value tier: TTL, LRU, caps on entries and on bytes.

The tier is what serves when Redis does not (and all there is without ``REDIS_URL``). It is
pure: no I/O, time only from the injected clock, one lock around each operation (a few
microseconds), so threads and event loops may share one tier.

An entry past its TTL is *expired*. It is not returned by :meth:`MemoryTier.get`, but it is
kept for up to :attr:`TierConfig.max_stale` more seconds, during which :meth:`MemoryTier.lookup`
still returns it with its ``stale_age``: a stale value served during an outage is better than
none, as long as the caller is told (the Redis client marks it degraded). Past that, it is gone.

Size accounting: an entry costs the UTF-8 length of its key plus the length of its value. When
a write would pass ``max_entries`` or ``max_bytes``, least recently used entries are evicted.

Example:
    >>> from fender._clock import ManualClock
    >>> clock = ManualClock()
    >>> tier = MemoryTier(TierConfig(max_entries=2, max_stale=10.0), clock=clock)
    >>> tier.set("a", b"1", ttl=5.0)
    True
    >>> clock.advance(6.0)
    1006.0
    >>> tier.get("a") is None, tier.lookup("a")
    (True, TierEntry(value=b'1', stale=True, stale_age=1.0))
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import NamedTuple

from fender._clock import Clock, monotonic
from fender.errors import ConfigurationError

__all__ = ["MemoryTier", "TierConfig", "TierEntry"]

_NEVER = math.inf


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TierConfig:
    """Bounds of a :class:`MemoryTier`; immutable, validated when built.

    Example:
        >>> TierConfig(max_entries=1000, max_bytes=1 << 20).max_entries
        1000
    """

    max_entries: int = 10_000
    """Entries kept at most; the least recently used go first."""
    max_bytes: int = 32 * 1024 * 1024
    """Bytes kept at most (keys in UTF-8 plus values); a larger single value is not stored."""
    max_stale: float = 300.0
    """Seconds an entry is kept past its TTL, to be served marked stale; 0 drops it at once."""

    def __post_init__(self) -> None:
        """Raise :class:`~fender.errors.ConfigurationError` naming the first invalid field."""
        for name in ("max_entries", "max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(name, value, "an integer >= 1")
        stale = self.max_stale
        if (
            not isinstance(stale, int | float)
            or isinstance(stale, bool)
            or not math.isfinite(stale)
            or stale < 0
        ):
            raise ConfigurationError("max_stale", stale, "a number of seconds >= 0")


class TierEntry(NamedTuple):
    """A value found in the tier, and whether (and by how many seconds) it is past its TTL."""

    value: bytes
    stale: bool
    """True when the entry is past its TTL (served only as a degraded answer)."""
    stale_age: float
    """Seconds past the TTL; 0 when fresh."""


class _Slot:
    __slots__ = ("expires_at", "size", "value")

    def __init__(self, value: bytes, expires_at: float, size: int) -> None:
        self.value = value
        self.expires_at = expires_at
        self.size = size


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and (not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0):
        raise ValueError(f"ttl must be a number of seconds > 0 or None, not {ttl!r}")


class MemoryTier:
    """A thread-safe TTL + LRU map of ``str`` keys to ``bytes`` values, bounded two ways.

    Args:
        config: The bounds (default :class:`TierConfig`).
        clock: Monotonic seconds; inject :class:`fender._clock.ManualClock` in tests.
    """

    __slots__ = ("_bytes", "_clock", "_data", "_lock", "config", "evictions")

    def __init__(self, config: TierConfig | None = None, *, clock: Clock = monotonic) -> None:
        """Build an empty tier; see the class docstring for the arguments."""
        config = TierConfig() if config is None else config
        if not isinstance(config, TierConfig):
            raise ConfigurationError("config", config, "a TierConfig")
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[str, _Slot] = OrderedDict()
        self._bytes = 0
        self.evictions = 0
        """Entries evicted to respect the bounds (not counting expiry)."""

    def __len__(self) -> int:
        """Entries held, expired ones still within ``max_stale`` included."""
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        """Iterate over a copy of the keys, least recently used first."""
        return iter(self.keys())

    def __contains__(self, key: object) -> bool:
        """True when ``key`` has a fresh (unexpired) value; does not count as a use."""
        slot = self._data.get(key) if isinstance(key, str) else None
        return slot is not None and slot.expires_at > self._clock()

    @property
    def nbytes(self) -> int:
        """Bytes held (keys in UTF-8 plus values)."""
        return self._bytes

    # -- reads -----------------------------------------------------------------------------------

    def lookup(self, key: str) -> TierEntry | None:
        """The value of ``key``, fresh or stale (see :class:`TierEntry`), or ``None``.

        A hit counts as a use for the LRU order; an entry past ``max_stale`` is dropped.
        """
        now = self._clock()
        with self._lock:
            slot = self._data.get(key)
            if slot is None:
                return None
            age = now - slot.expires_at
            if age >= 0.0 and age >= self.config.max_stale:
                self._remove(key, slot)
                return None
            self._data.move_to_end(key)
            return TierEntry(slot.value, age >= 0.0, max(age, 0.0))

    def get(self, key: str) -> bytes | None:
        """The fresh value of ``key``, or ``None`` (also when only a stale one is left)."""
        entry = self.lookup(key)
        return entry.value if entry is not None and not entry.stale else None

    def peek(self, key: str) -> tuple[bytes, float | None] | None:
        """The fresh value of ``key`` and its remaining TTL (``None``: no TTL), or ``None``.

        Not a use: the LRU order is left alone.
        """
        now = self._clock()
        with self._lock:
            slot = self._data.get(key)
            if slot is None or slot.expires_at <= now:
                return None
            remaining = None if slot.expires_at == _NEVER else slot.expires_at - now
            return slot.value, remaining

    def keys(self) -> list[str]:
        """The keys held, least recently used first (a copy)."""
        with self._lock:
            return list(self._data)

    # -- writes ----------------------------------------------------------------------------------

    def set(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``None``: no expiry).

        Returns:
            ``False`` when the entry alone is larger than ``max_bytes``: it is not stored, and
            any previous value of ``key`` is dropped (it would be out of date).
        """
        _check_ttl(ttl)
        value = bytes(value)
        size = len(key.encode()) + len(value)
        expires_at = _NEVER if ttl is None else self._clock() + ttl
        with self._lock:
            old = self._data.get(key)
            if old is not None:
                self._remove(key, old)
            if size > self.config.max_bytes:
                return False
            self._data[key] = _Slot(value, expires_at, size)
            self._bytes += size
            self._evict()
            return True

    def delete(self, key: str) -> bool:
        """Drop ``key``; return whether it held a value (fresh or stale)."""
        with self._lock:
            slot = self._data.get(key)
            if slot is None:
                return False
            self._remove(key, slot)
            return True

    def delete_prefix(self, prefix: str) -> int:
        """Drop every key starting with ``prefix``; return how many were dropped.

        Scans every key (the tier is small and bounded; no index is kept for this rare call).
        """
        with self._lock:
            doomed = [key for key in self._data if key.startswith(prefix)]
            for key in doomed:
                self._remove(key, self._data[key])
            return len(doomed)

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to the integer at ``key`` (missing or expired: 0); return the result.

        Like Redis ``INCRBY``, an existing expiry is kept. ``ttl`` applies only when the key is
        created here, the usual pattern for counters in a window.

        Raises:
            ValueError: the value is not a base-10 integer.
        """
        _check_ttl(ttl)
        now = self._clock()
        with self._lock:
            slot = self._data.get(key)
            if slot is not None and slot.expires_at > now:
                try:
                    current = int(slot.value)
                except ValueError:
                    raise ValueError(f"value at {key!r} is not an integer") from None
                expires_at = slot.expires_at
            else:
                current = 0
                expires_at = _NEVER if ttl is None else now + ttl
            if slot is not None:
                self._remove(key, slot)
            result = current + amount
            value = str(result).encode()
            size = len(key.encode()) + len(value)
            self._data[key] = _Slot(value, expires_at, size)
            self._bytes += size
            self._evict()
            return result

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._data.clear()
            self._bytes = 0

    # -- internals (under the lock) --------------------------------------------------------------

    def _remove(self, key: str, slot: _Slot) -> None:
        del self._data[key]
        self._bytes -= slot.size

    def _evict(self) -> None:
        data = self._data
        config = self.config
        while len(data) > config.max_entries or self._bytes > config.max_bytes:
            _key, slot = data.popitem(last=False)
            self._bytes -= slot.size
            self.evictions += 1
