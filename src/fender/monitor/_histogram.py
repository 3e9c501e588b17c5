"""Latency as a fixed log-scale histogram: mergeable by addition, quantiles within ~9%.

Bin 0 holds durations up to :data:`FLOOR` (0.25 ms); bin ``i`` (1..72) holds
``(FLOOR * 2**((i-1)/4), FLOOR * 2**(i/4)]``, four bins an octave, up to 65.5 s; the last bin
holds everything longer. A quantile is interpolated geometrically inside its bin, so it is off
by at most half a bin (a factor of 2**(1/8), about 9%). Fixed bins, unlike a sketch that adapts,
merge across seconds and worker processes by adding counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    """The bin of a duration in seconds."""
    if seconds <= FLOOR:
        return 0
    index = int(math.log2(seconds / FLOOR) * PER_OCTAVE) + 1
    return min(_LAST, index)


def upper_bound(index: int) -> float:
    """The upper bound (seconds) of bin ``index``; ``inf`` for the overflow bin."""
    return _UPPER[index] if index < _LAST else math.inf


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) in seconds of a histogram's ``counts``; None when empty.

    A quantile in the overflow bin is reported as that bin's lower bound (65.5 s): "at least".
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count <= 0:
            continue
        if seen + count >= rank:
            if index == _LAST:
                return _UPPER[-1]
            high = _UPPER[index]
            low = _UPPER[index - 1] if index else high / 2 ** (1 / PER_OCTAVE)
            # Geometric interpolation: the bins are log-scale.
            return float(low * (high / low) ** ((rank - seen) / count))
        seen += count
    return _UPPER[-1]
