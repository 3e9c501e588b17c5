"""The sparkline of the /status page: where its points go, its gaps, its scale, its title."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from fender.http.sparkline import DASH, finite, scaled_runs, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def drawing(values, **kwargs):
    """The sparkline parsed as XML (which it must be), and its title."""
    svg = ET.fromstring(sparkline(values, **{"label": "s", **kwargs}))
    return svg, svg.find(f"{SVG}title").text


def path_runs(svg):
    """The runs of points the <path> draws: one per ``M``."""
    path = svg.find(f"{SVG}path")
    if path is None:
        return []
    return [
        [tuple(float(n) for n in xy.split()) for xy in piece.split("L")]
        for piece in path.get("d").split("M")[1:]
    ]


def dots(svg):
    return [(float(c.get("cx")), float(c.get("cy"))) for c in svg.iter(f"{SVG}circle")]


def test_points_are_spread_over_the_width_and_scaled_to_the_series_max():
    # width 100, height 20, 2 px of padding: x from 2 to 98, y from 18 (zero) to 2 (the max)
    assert scaled_runs([0, 1, 2, 4], width=100, height=20) == [
        [(2.0, 18.0), (34.0, 14.0), (66.0, 10.0), (98.0, 2.0)]
    ]


def test_the_svg_draws_the_same_points_as_one_line():
    svg, _ = drawing([0, 1, 2, 4], width=100, height=20)
    assert path_runs(svg) == [[(2.0, 18.0), (34.0, 14.0), (66.0, 10.0), (98.0, 2.0)]]
    assert dots(svg) == []
    assert svg.get("viewBox") == "0 0 100 20"


def test_a_missing_value_is_a_gap_never_a_zero():
    values = [1, None, 1, 2, None, math.nan, 2, 4, math.inf]
    runs = scaled_runs(values, width=84, height=20)  # x = 2 + 10 i
    assert runs == [
        [(2.0, 14.0)],
        [(22.0, 14.0), (32.0, 10.0)],
        [(62.0, 10.0), (72.0, 2.0)],
    ]
    svg, _ = drawing(values, width=84, height=20)
    assert path_runs(svg) == runs[1:]  # two pieces of line, the second starting after the gap
    assert dots(svg) == [(2.0, 14.0)]  # a lone point is a dot, or it would not show
    assert all(y < 18.0 for run in runs for _, y in run)  # nothing was drawn as 0


def test_scale_is_the_series_own_max_and_negative_values_sit_on_the_baseline():
    small = scaled_runs([0.001, 0.002], width=100, height=20)
    large = scaled_runs([1000, 2000], width=100, height=20)
    assert small == large == [[(2.0, 10.0), (98.0, 2.0)]]
    assert scaled_runs([-5, 10], width=100, height=20) == [[(2.0, 18.0), (98.0, 2.0)]]


@pytest.mark.parametrize(
    ("values", "y", "title"),
    [
        pytest.param([3.0] * 5, 2.0, "s: last 3, max 3", id="constant"),
        pytest.param([0] * 5, 18.0, "s: last 0, max 0", id="zeros"),
    ],
)
def test_a_constant_series_is_a_flat_line(values, y, title):
    svg, text = drawing(values, width=100, height=20)
    (run,) = path_runs(svg)
    assert {point[1] for point in run} == {y}
    assert len(run) == len(values)
    assert text == title


@pytest.mark.parametrize(
    "values", [pytest.param([], id="empty"), pytest.param([None] * 60, id="all-null")]
)
def test_no_known_value_draws_the_baseline_alone(values):
    svg, text = drawing(values, width=100, height=20)
    assert svg.find(f"{SVG}path") is None
    assert dots(svg) == []
    (base,) = svg.iter(f"{SVG}line")
    assert base.get("class") == "base"
    assert base.get("y1") == base.get("y2") == "18"
    assert text == f"s: last {DASH}, max {DASH}"


def test_a_single_value_is_a_dot_in_the_middle():
    svg, _ = drawing([7], width=100, height=20)
    assert dots(svg) == [(50.0, 2.0)]


def test_title_says_the_newest_value_and_the_max_formatted():
    _, text = drawing([0.5, 0.25, 0.125], label="error rate", fmt=lambda v: f"{v:.0%}")
    assert text == "error rate: last 12%, max 50%"
    _, text = drawing([1.0, 2.0, None], label="p99")
    assert text == f"p99: last {DASH}, max 2"  # the newest step has no data: not its neighbour


def test_the_label_is_escaped_and_nothing_needs_a_style_or_a_script():
    markup = sparkline([1, None, 2], label='<script>alert("x")</script>')
    assert "<script" not in markup
    assert "style=" not in markup
    svg = ET.fromstring(markup)
    assert svg.find(f"{SVG}title").text.startswith('<script>alert("x")</script>: last 2')
    assert svg.get("role") == "img"
    assert svg.get("class") == "spark"


def test_finite_accepts_numbers_only():
    assert finite(3) == 3.0
    assert finite(2.5) == 2.5
    for value in (None, True, math.nan, -math.inf, "3", [1]):
        assert finite(value) is None
