"""The lifecycle's exact values: defaults, times since a transition, restart (mutation tests)."""

from __future__ import annotations

import pytest

from fender._clock import ManualClock
from fender.runtime._lifecycle import Lifecycle, State


def _recorded(life):
    seen = []
    life.add_listener(lambda old, new, reason: seen.append((old, new, reason)))
    return seen


def test_a_new_lifecycle_serves_nothing_and_is_not_broken():
    life = Lifecycle(ManualClock())
    assert life.state is State.STARTING
    assert life.draining is False
    assert life.broken is None


@pytest.mark.parametrize(
    ("act", "reason"),
    [
        (lambda life: life.move(State.DRAINING), ""),
        (lambda life: life.drain(), "drain requested"),
        (lambda life: life.stop(), "shutdown"),
        (lambda life: life.mark_ready(), "startup complete"),
    ],
)
def test_default_reasons(act, reason):
    life = Lifecycle(ManualClock())
    seen = _recorded(life)
    assert act(life) is True
    assert seen[0][2] == reason


def test_in_state_for_counts_from_the_last_transition():
    clock = ManualClock(500.0)
    life = Lifecycle(clock)
    clock.advance(3)
    assert life.in_state_for() == 3
    assert life.uptime() == 3
    life.mark_ready()
    clock.advance(2)
    assert life.in_state_for() == 2
    assert life.uptime() == 5


def test_restart_only_from_stopped_and_back_to_a_clean_start():
    clock = ManualClock()
    life = Lifecycle(clock)
    seen = _recorded(life)
    assert life.restart() is False
    assert life.state is State.STARTING
    assert seen == []
    life.stop()
    life.broken = "start failed"
    clock.advance(4)
    assert life.restart() is True
    assert life.state is State.STARTING
    assert life.draining is False
    assert life.broken is None
    assert life.in_state_for() == 0
    assert life.uptime() == 4
    assert seen[-1] == (State.STOPPED, State.STARTING, "started again")
    assert life.restart("again") is False
    assert life.mark_ready()


def test_restart_reports_its_reason():
    life = Lifecycle(ManualClock())
    seen = _recorded(life)
    life.stop()
    assert life.restart("second lifespan")
    assert seen[-1] == (State.STOPPED, State.STARTING, "second lifespan")


def test_draining_follows_the_state():
    life = Lifecycle(ManualClock())
    life.mark_ready()
    assert life.draining is False
    life.drain()
    assert life.draining is True
    life.stop()
    assert life.draining is True
