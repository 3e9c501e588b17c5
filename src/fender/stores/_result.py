"""What a resilient store answers: a value and where it came from."""

from __future__ import annotations

import dataclasses
import enum
from typing import Generic, TypeVar

__all__ = ["Result", "Source"]

T = TypeVar("T")


class Source(enum.StrEnum):
    """Where an answer came from."""

    REDIS = "redis"
    MEMORY = "memory"
    """The in-memory tier: Redis is down (or not configured)."""
    DEFAULT = "default"
    """Nowhere: a miss during an outage; the caller's default was returned."""
    DROPPED = "dropped"
    """A write nobody stored: Redis is down and the fallback is off."""


@dataclasses.dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """A read's answer and its provenance.

    Args:
        value: The value, or the caller's default when ``source`` is ``default``.
        source: ``redis``, ``memory`` (the tier) or ``default`` (nothing found).
        stale: True when the tier's copy is past its TTL (kept for ``max_stale``).
        stale_age: Seconds past the TTL; 0 when fresh.
        degraded: True when Redis is configured but did not answer this read.
    """

    value: T
    source: Source
    stale: bool = False
    stale_age: float = 0.0
    degraded: bool = False

    def __repr__(self) -> str:
        """Value, source and staleness (``degraded`` elided)."""
        return (
            f"Result(value={self.value!r}, source={self.source!r}, stale={self.stale}, "
            f"stale_age={self.stale_age}, ...)"
        )
