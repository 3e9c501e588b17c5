"""Latency as a fixed log-scale histogram: mergeable by addition, quantiles within one bin.

Bin 0 holds durations up to :data:`FLOOR` (0.25 ms); bin ``i`` (1..72) holds
``(FLOOR * 2**((i-1)/4), FLOOR * 2**(i/4)]``, four bins an octave, up to 65.5 s; the last bin
holds everything longer. A quantile is interpolated geometrically inside its bin: it lies in the
right bin, but where in it is a guess, so it may be off by up to a bin (a factor of 2**(1/4),
about 19%: a constant 450 ms reads as up to 512 ms). Fixed bins, unlike a sketch that adapts,
merge across seconds and worker processes by adding counts.

A threshold that matters (the p99 alert's) is made exact by counting, beside the bins, the
durations above it: :func:`quantile` cuts the bin holding the threshold there, so a quantile
reads above the threshold exactly when more than its share of durations were.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Final

__all__ = ["BINS", "FLOOR", "PER_OCTAVE", "bin_of", "quantile", "upper_bound"]

FLOOR: Final = 0.00025
"""Seconds: the upper bound of the first bin."""
PER_OCTAVE: Final = 4
"""Bins an octave (a doubling of the duration)."""
BINS: Final = 74
"""Bins of a histogram: the first, 72 log-scale ones, and the overflow."""
_LAST: Final = BINS - 1
_UPPER: Final = tuple(FLOOR * 2 ** (i / PER_OCTAVE) for i in range(BINS - 1))


def bin_of(seconds: float) -> int:
    """The bin of a duration in seconds (a bound belongs to the bin it closes)."""
    if seconds <= FLOOR:
        return 0
    return min(_LAST, math.ceil(math.log2(seconds / FLOOR) * PER_OCTAVE))


def upper_bound(index: int) -> float:
    """The upper bound (seconds) of bin ``index``; ``inf`` for the overflow bin."""
    return _UPPER[index] if index < _LAST else math.inf


def quantile(
    counts: Sequence[int], q: float, split: tuple[float, int] | None = None
) -> float | None:
    """The ``q`` quantile (0..1) in seconds of a histogram's ``counts``; None when empty.

    ``split``: (an edge in seconds, how many durations were above it), counted exactly beside
    the bins: the bin holding the edge is cut in two there, so the quantile is above the edge
    exactly when fewer than ``q`` of the durations were at most the edge.

    A quantile in the overflow bin is reported as that bin's lower bound (65.5 s): "at least".
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for low, high, part in _segments(counts, split):
        if seen + part >= rank:
            if math.isinf(high):
                return low
            # Geometric interpolation: the bins are log-scale.
            return float(low * (high / low) ** ((rank - seen) / part))
        seen += part
    return _UPPER[-1]


def _segments(
    counts: Sequence[int], split: tuple[float, int] | None
) -> Iterator[tuple[float, float, int]]:
    """(low, high, count) of each non-empty bin in order, the split's bin cut in two.

    The overflow bin comes as (its lower bound, inf, count).
    """
    cut, edge, above_in_cut = -1, 0.0, 0
    if split is not None:
        edge, above = split
        cut = bin_of(edge)
        if cut != _LAST and _low(cut) < edge < _UPPER[cut]:
            above_in_cut = min(counts[cut], max(0, above - sum(counts[cut + 1 :])))
        else:
            cut = -1  # the edge is a bin bound (or past them): the bins alone are exact
    for index, count in enumerate(counts):
        if count <= 0:
            continue
        if index == _LAST:
            yield _UPPER[-1], math.inf, count
        elif index == cut:
            if count > above_in_cut:
                yield _low(index), edge, count - above_in_cut
            if above_in_cut:
                yield edge, _UPPER[index], above_in_cut
        else:
            yield _low(index), _UPPER[index], count


def _low(index: int) -> float:
    """The lower bound of bin ``index`` (bin 0's taken a bin below its upper one)."""
    return _UPPER[index - 1] if index else _UPPER[0] / 2 ** (1 / PER_OCTAVE)
