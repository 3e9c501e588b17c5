from __future__ import annotations

import pytest

from fender._clock import ManualClock
from fender.runtime._drain import clear_drain, drain_flag, is_draining, request_drain
from fender.runtime._lifecycle import Lifecycle, State
from fender.runtime.uvicorn_worker import graceful_budget


def test_states_move_forward_only():
    clock = ManualClock()
    life = Lifecycle(clock)
    seen = []
    life.add_listener(lambda old, new, reason: seen.append((old, new, reason)))
    assert life.state is State.STARTING
    assert not life.ready
    clock.advance(2)
    assert life.mark_ready()
    assert life.ready
    assert life.uptime() == 2
    assert life.drain("preStop")
    assert life.draining
    assert not life.ready
    assert not life.mark_ready()  # a late "ready" never undoes a drain
    assert life.stop()
    assert not life.drain()
    assert [(o.value, n.value, r) for o, n, r in seen] == [
        ("starting", "ready", "startup complete"),
        ("ready", "draining", "preStop"),
        ("draining", "stopped", "shutdown"),
    ]


@pytest.mark.parametrize(
    ("state", "gauge"),
    [(State.STARTING, 0), (State.READY, 1), (State.DRAINING, 2), (State.STOPPED, 3)],
)
def test_gauge_values(state, gauge):
    assert state.gauge == gauge


def test_drain_straight_from_starting():
    life = Lifecycle(ManualClock())
    assert life.drain()
    assert life.state is State.DRAINING


def test_drain_flag_round_trip(tmp_path):
    assert not is_draining(tmp_path, 0.0)
    flag = request_drain(tmp_path / "run", "test")
    assert flag == drain_flag(tmp_path / "run")
    assert is_draining(tmp_path / "run", 0.0)
    assert "test" in flag.read_text()
    # a flag older than the server is left over from an earlier run
    assert not is_draining(tmp_path / "run", flag.stat().st_mtime + 1)
    clear_drain(tmp_path / "run")
    assert not is_draining(tmp_path / "run", 0.0)


@pytest.mark.parametrize(("graceful", "budget"), [(30, 24), (10, 8), (5, 4), (2, 1), (1, 1)])
def test_uvicorn_gets_a_budget_shorter_than_gunicorn(graceful, budget):
    assert graceful_budget(graceful) == budget
    assert graceful_budget(graceful) < graceful or graceful == 1
