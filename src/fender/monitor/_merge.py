"""The series of every worker, merged: windows, sparkline points, slowest routes, readings.

Counts add across workers; the gauges (memory used, breakers open) take the worst worker's.
Pure over :class:`~fender.monitor._rings.Rings` (which it only reads) and a wall ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from fender.monitor._histogram import BINS, quantile
from fender.monitor._rings import ROUTE_MINUTES, SECONDS, Rings

__all__ = ["Window", "merged_rows", "route_windows", "series", "windows"]

# A merged row: requests, errors, rejected, memory permille + 1, open breakers + 1, slow, bins.
_REQ, _ERR, _REJ, _MEM, _BRK, _SLOW, _BINS = 0, 1, 2, 3, 4, 5, 6
WINDOWS: Final = {"1m": 60, "5m": 300, "15m": SECONDS}
_QUANTILES: Final = (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99))


def merged_rows(rings: Sequence[Rings], first: int, last: int) -> list[list[int] | None]:
    """One merged row per second from ``first`` to ``last`` (None where no worker recorded)."""
    rows: list[list[int] | None] = []
    for second in range(first, last + 1):
        row: list[int] | None = None
        for ring in rings:
            bucket = ring.second(second)
            if bucket is None:
                continue
            values = bucket.tolist()
            if row is None:
                row = values
                continue
            memory, breakers = max(row[_MEM], values[_MEM]), max(row[_BRK], values[_BRK])
            row = [a + b for a, b in zip(row, values, strict=True)]
            row[_MEM], row[_BRK] = memory, breakers
        rows.append(row)
    return rows


class Window:
    """Counts and a histogram over some seconds."""

    __slots__ = ("bins", "edge", "errors", "rejected", "requests", "seconds", "slow")

    def __init__(self, seconds: int, edge: float | None = None) -> None:
        """Empty, over ``seconds``; ``edge``: the seconds past which the rows count as slow."""
        self.seconds = seconds
        self.edge = edge
        self.requests = self.errors = self.rejected = self.slow = 0
        self.bins = [0] * BINS

    def add(self, row: Sequence[int]) -> None:
        """Count one merged row."""
        self.requests += row[_REQ]
        self.errors += row[_ERR]
        self.rejected += row[_REJ]
        self.slow += row[_SLOW]
        self.bins = [a + b for a, b in zip(self.bins, row[_BINS:], strict=True)]

    def add_route(self, bucket: Sequence[int]) -> None:
        """Count one route bucket (requests, errors, bins)."""
        self.requests += bucket[0]
        self.errors += bucket[1]
        self.bins = [a + b for a, b in zip(self.bins, bucket[2:], strict=True)]

    @property
    def error_rate(self) -> float | None:
        """5xx over requests; None without requests."""
        return self.errors / self.requests if self.requests else None

    def quantile_ms(self, q: float) -> float | None:
        """The ``q`` latency quantile in milliseconds; None without requests."""
        split = None if self.edge is None else (self.edge, self.slow)
        seconds = quantile(self.bins, q, split)
        return None if seconds is None else seconds * 1000

    def as_dict(self) -> dict[str, Any]:
        """The window as /status says it."""
        rate = self.error_rate
        return {
            "seconds": self.seconds,
            "requests": self.requests,
            "requests_per_s": round(self.requests / self.seconds, 3),
            "errors": self.errors,
            "error_rate": None if rate is None else round(rate, 4),
            "rate_limited": self.rejected,
            **{key: _ms(self.quantile_ms(q)) for key, q in _QUANTILES},
        }


def windows(rows: Sequence[list[int] | None], edge: float | None = None) -> dict[str, Window]:
    """The 1, 5 and 15 minute windows ending with the last of ``rows`` (one per second).

    ``edge``: the seconds past which the rows counted requests as slow (see :class:`Window`).
    """
    result = {name: Window(seconds, edge) for name, seconds in WINDOWS.items()}
    count = len(rows)
    for age, row in enumerate(reversed(rows)):
        if row is None:
            continue
        for window in result.values():
            if age < window.seconds and age < count:
                window.add(row)
    return result


def series(
    rows: Sequence[list[int] | None], step: int, edge: float | None = None
) -> dict[str, Any]:
    """Sparkline points of ``step`` seconds each, oldest first: rate, errors, p99, memory."""
    rate: list[float] = []
    errors: list[float | None] = []
    p99: list[float | None] = []
    memory: list[float | None] = []
    for start in range(0, len(rows), step):
        window = Window(step, edge)
        worst = 0
        for row in rows[start : start + step]:
            if row is not None:
                window.add(row)
                worst = max(worst, row[_MEM])
        rate.append(round(window.requests / step, 3))
        share = window.error_rate
        errors.append(None if share is None else round(share, 4))
        p99.append(_ms(window.quantile_ms(0.99)))
        memory.append(round((worst - 1) / 1000, 3) if worst else None)
    return {
        "step_seconds": step,
        "requests_per_s": rate,
        "error_rate": errors,
        "p99_ms": p99,
        "memory_ratio": memory,
    }


def route_windows(rings: Iterable[Rings], minutes: Iterable[int]) -> dict[str, Window]:
    """Per route name, its window over the wall ``minutes`` (within the last 15)."""
    wanted = list(minutes)[-ROUTE_MINUTES:]
    result: dict[str, Window] = {}
    for ring in rings:
        for slot in range(ring.route_count):
            window: Window | None = None
            for minute in wanted:
                bucket = ring.minute(slot, minute)
                if bucket is None:
                    continue
                if window is None:
                    name = ring.route_name(slot)
                    window = result.get(name) or result.setdefault(name, Window(60 * len(wanted)))
                window.add_route(bucket.tolist())
    return result


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
