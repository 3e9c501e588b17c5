"""The memory guard's decisions, sample by sample, on a manual clock."""

from __future__ import annotations

import pytest

from fender._clock import ManualClock
from fender.errors import ConfigurationError
from fender.runtime._memory import Action, MemoryGuard, MemoryThresholds, Pressure

SHARE = 1000


def guard(clock: ManualClock | None = None, **thresholds: float) -> MemoryGuard:
    return MemoryGuard(
        share_bytes=SHARE,
        clock=clock or ManualClock(),
        thresholds=MemoryThresholds(**thresholds) if thresholds else None,
    )


def test_under_the_collect_threshold_nothing_happens():
    g = guard()
    assert [g.observe(rss) for rss in (0, 500, 749)] == [Action.NONE] * 3
    assert g.pressure is Pressure.OK


def test_crossing_75_percent_collects_once_then_at_most_every_interval():
    clock = ManualClock()
    g = guard(clock, collect_interval=30)
    assert g.observe(750) is Action.COLLECT
    assert g.pressure is Pressure.HIGH
    clock.advance(29.9)
    assert g.observe(800) is Action.NONE
    clock.advance(0.1)
    assert g.observe(800) is Action.COLLECT


def test_going_back_under_ends_the_episode():
    clock = ManualClock()
    g = guard(clock)
    assert g.observe(800) is Action.COLLECT
    assert g.observe(100) is Action.NONE
    assert g.pressure is Pressure.OK
    assert g.observe(800) is Action.COLLECT  # a new crossing: at once, no interval


def test_crossing_85_percent_recycles_once():
    g = guard()
    assert g.observe(850) is Action.RECYCLE
    assert g.pressure is Pressure.CRITICAL
    assert g.recycling
    assert g.observe(990) is Action.NONE  # already recycling: not told twice
    assert g.observe(800) is Action.COLLECT  # still collects while it finishes


def test_custom_thresholds():
    g = guard(collect=0.5, critical=0.6)
    assert [g.observe(rss) for rss in (499, 500, 600)] == [
        Action.NONE,
        Action.COLLECT,
        Action.RECYCLE,
    ]


@pytest.mark.parametrize(
    ("thresholds", "field"),
    [
        ({"collect": 0}, "FENDER_MEMORY_COLLECT_PERCENT"),
        ({"collect": 1.2}, "FENDER_MEMORY_COLLECT_PERCENT"),
        ({"collect": 0.9, "critical": 0.8}, "FENDER_MEMORY_CRITICAL_PERCENT"),
        ({"critical": 1.5}, "FENDER_MEMORY_CRITICAL_PERCENT"),
        ({"collect_interval": -1}, "collect_interval"),
    ],
)
def test_bad_thresholds_are_named(thresholds, field):
    with pytest.raises(ConfigurationError) as raised:
        MemoryThresholds(**thresholds)
    assert raised.value.field == field


def test_share_must_be_positive():
    with pytest.raises(ConfigurationError):
        MemoryGuard(share_bytes=0, clock=ManualClock())
