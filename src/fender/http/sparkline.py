"""Sparklines: a short series drawn as a small inline SVG, for the ``/status`` page.

Inline SVG costs no request and runs no script, and presentation attributes (``fill``,
``stroke``) are not styles: the page's policy (``default-src 'none'; style-src 'self'``) lets
it render as is. Colours come from the page's stylesheet through classes and ``currentColor``.

The drawing is honest about what it does not know: a missing value (``None``, NaN, infinity)
is a gap in the line, never a zero; a series is scaled from 0 to its own maximum, so that a
flat line near the bottom means "small against this series' peak", and a series of zeros
lies on the baseline.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["DASH", "HEIGHT", "WIDTH", "describe", "finite", "scaled_runs", "sparkline"]

WIDTH: Final = 240.0
"""Default width of the drawing, in CSS pixels (the viewBox: the stylesheet may scale it)."""
HEIGHT: Final = 48.0
"""Default height of the drawing."""
DASH: Final = "\u2013"
"""An unknown value (an en dash), in a title or a table: never "None", never a made-up 0."""
_PAD: Final = 2.0  # keeps the stroke at the top and bottom edges inside the box
_DOT_RADIUS: Final = 1.5  # a point with no neighbour would draw nothing as a line


def finite(value: object) -> float | None:
    """``value`` as a float if it is a finite number (not a bool), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def scaled_runs(
    values: Sequence[object], *, width: float = WIDTH, height: float = HEIGHT
) -> list[list[tuple[float, float]]]:
    """The points to draw, ``(x, y)`` in SVG coordinates, in runs of consecutive known values.

    Point ``i`` of ``n`` sits at ``x = pad + i * (width - 2 pad) / (n - 1)`` (a lone point: the
    middle), and at a height proportional to its value over the series' maximum (negative
    values count as 0). A missing value ends a run: the runs are the pieces of the line.
    No known value (or no value at all): no run.
    """
    known = [finite(value) for value in values]
    top = max((v for v in known if v is not None), default=None)
    if top is None:
        return []
    count = len(known)
    step = (width - 2 * _PAD) / (count - 1) if count > 1 else 0.0
    left = _PAD if count > 1 else width / 2
    span = height - 2 * _PAD
    runs: list[list[tuple[float, float]]] = []
    run: list[tuple[float, float]] = []
    for index, value in enumerate(known):
        if value is None:
            if run:
                runs.append(run)
                run = []
            continue
        fraction = max(value, 0.0) / top if top > 0 else 0.0
        run.append((round(left + index * step, 1), round(height - _PAD - fraction * span, 1)))
    if run:
        runs.append(run)
    return runs


def describe(values: Sequence[object], fmt: Callable[[float], str]) -> tuple[str, str]:
    """The newest value and the series' maximum, formatted; :data:`DASH` for unknown.

    The newest value is the last one, known or not: a step without data is not its
    neighbour's value.
    """
    known = [v for v in map(finite, values) if v is not None]
    last = finite(values[-1]) if values else None
    return (DASH if last is None else fmt(last)), (fmt(max(known)) if known else DASH)


def sparkline(
    values: Sequence[object],
    *,
    label: str,
    fmt: Callable[[float], str] = "{:g}".format,
    width: float = WIDTH,
    height: float = HEIGHT,
) -> str:
    """An ``<svg>`` drawing ``values`` (oldest first), its ``<title>`` naming the last and max.

    ``label`` names the series and ``fmt`` formats a value for the title ("requests/s: last
    2.5, max 4", as :func:`describe` says them). The baseline is always drawn, so an empty
    chart still reads as a chart.
    """
    runs = scaled_runs(values, width=width, height=height)
    last, top = describe(values, fmt)
    title = f"{label}: last {last}, max {top}"
    base = height - _PAD
    head = (
        f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{width:g}" height='
        f'"{height:g}" viewBox="0 0 {width:g} {height:g}" role="img">'
        f"<title>{html.escape(title)}</title>"
        f'<line class="base" x1="0" y1="{base:g}" x2="{width:g}" y2="{base:g}" '
        'stroke="currentColor" stroke-width="1"/>'
    )
    parts = [head]
    lines = [run for run in runs if len(run) > 1]
    if lines:
        path = " ".join("M" + " L".join(f"{x:g} {y:g}" for x, y in run) for run in lines)
        parts.append(
            f'<path class="line" d="{path}" fill="none" stroke="currentColor" '
            'stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round"/>'
        )
    parts.extend(
        f'<circle class="dot" cx="{run[0][0]:g}" cy="{run[0][1]:g}" r="{_DOT_RADIUS:g}" '
        'fill="currentColor"/>'
        for run in runs
        if len(run) == 1
    )
    parts.append("</svg>")
    return "".join(parts)
