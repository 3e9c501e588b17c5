"""Several worker processes over one monitor directory: merged counts, one evaluator, takeover.

Each "worker" is a real process (``python -c``) with its own Monitor on the shared directory
and a manual clock given on its command line; the test's own Monitor is one more worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from fender.monitor import Monitor
from fender.settings import load_settings
from fender.testing import ManualClock, capture_logs

START = 1_800_000_000.0
SRC = Path(__file__).resolve().parents[2] / "src"

WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from fender.monitor import Monitor
    from fender.settings import load_settings
    directory, now, requests, errors, ticks = sys.argv[1:6]
    now = float(now)
    settings = load_settings({"FENDER_ALERT_ERROR_RATE_FOR": "0"}, env_file=None)
    clock = [now]
    monitor = Monitor(settings, directory=lambda: Path(directory), share_bytes=None,
                      open_breakers=lambda: ["payments"], streaks=dict, clock=lambda: clock[0])
    monitor.open()
    for n in range(int(requests)):
        monitor.record("/orders", 500 if n < int(errors) else 200, 0.01)
    said = []
    for _ in range(int(ticks)):
        clock[0] += 1
        said += [(t.kind, t.alert.name) for t in monitor.tick()]
    print(json.dumps({"said": said, "leading": monitor._leading}))
    """
)


def worker(directory: Path, now: float, requests: int, errors: int, ticks: int) -> dict:
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(directory), str(now), str(requests), str(errors),
         str(ticks)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def monitor(directory: Path, clock: ManualClock) -> Iterator[Monitor]:
    """This process as one more worker; stopped (its lock released) at the end."""
    settings = load_settings({"FENDER_ALERT_ERROR_RATE_FOR": "0"}, env_file=None)
    found = Monitor(
        settings,
        directory=lambda: directory,
        share_bytes=None,
        open_breakers=list,
        streaks=dict,
        clock=clock,
    )
    found.open()
    try:
        yield found
    finally:
        found.stop()


def test_counts_of_every_worker_are_merged_and_a_gone_leader_is_succeeded_without_a_second_firing(
    tmp_path,
):
    first = worker(tmp_path, START, requests=40, errors=20, ticks=1)
    assert first == {"said": [["firing", "error_rate"]], "leading": True}
    second = worker(tmp_path, START, requests=60, errors=0, ticks=1)
    # the first worker is gone and its lock with it: the second leads, and continues the book
    assert second == {"said": [], "leading": True}
    clock = ManualClock(START + 1)
    with monitor(tmp_path, clock) as own:
        check_succession(own, clock)


def check_succession(own: Monitor, clock: ManualClock) -> None:
    traffic = own.summary()["traffic"]
    assert traffic["workers"] == 1  # running: the two others exited ...
    assert traffic["windows"]["1m"]["requests"] == 100  # ... and their requests still count
    assert traffic["windows"]["1m"]["errors"] == 20
    (active,) = own.summary()["alerts"]["active"]
    assert active["name"] == "error_rate"
    assert active["since"] == "2027-01-15T08:00:01Z"  # when the first worker fired it
    # 20 errors in 100 + 400 requests: 4%, resolved once, by whoever leads now (this one)
    for _ in range(400):
        own.record("/orders", 200, 0.01)
    clock.advance(1)
    assert [(t.kind, t.alert.name) for t in own.tick()] == [("resolved", "error_rate")]
    assert own.summary()["alerts"]["active"] == []


def test_only_one_of_two_live_workers_evaluates(tmp_path):
    clock = ManualClock(START)
    with monitor(tmp_path, clock) as leader:
        check_one_leader(tmp_path, leader, clock)


def check_one_leader(tmp_path: Path, leader: Monitor, clock: ManualClock) -> None:
    leader.tick()
    # another live process cannot take the lock while this one holds it
    other = worker(tmp_path, START, requests=20, errors=20, ticks=2)
    assert other == {"said": [], "leading": False}
    # ... but its traffic and its open breaker reach the leader's evaluation
    clock.advance(1)
    said = [(t.kind, t.alert.name) for t in leader.tick()]
    assert ("firing", "error_rate") in said
    readings = leader.summary()["traffic"]["windows"]["1m"]
    assert readings["requests"] == 20


def test_files_of_workers_long_gone_are_removed(tmp_path):
    worker(tmp_path, START, requests=5, errors=0, ticks=1)
    states = list(tmp_path.glob("state_*.json"))
    assert len(states) == 1
    clock = ManualClock(START + 10)
    with monitor(tmp_path, clock) as own:
        check_cleanup(tmp_path, own, clock, states[0])


def check_cleanup(tmp_path: Path, own: Monitor, clock: ManualClock, state: Path) -> None:
    own.tick()  # a dead worker's shared state goes at once
    assert not state.exists()
    assert len(list(tmp_path.glob("rings_*.bin"))) == 2  # its requests still count
    clock.advance(15 * 60 + 60)
    own.tick()
    assert [p.name for p in tmp_path.glob("rings_*.bin")] == [f"rings_{os.getpid()}.bin"]


def test_a_directory_it_cannot_write_degrades_to_this_worker_alone(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    clock = ManualClock(START)
    with capture_logs() as logs, monitor(blocked / "monitor", clock) as own:
        own.record("/orders", 200, 0.01)
        clock.advance(1)
        own.tick()
        assert own.summary()["traffic"]["windows"]["1m"]["requests"] == 1
    (said,) = logs.named("monitor_unshared")
    assert "/status shows this worker's requests only" in said["effect"]


def test_a_directory_removed_under_it_is_said_once_and_ticking_goes_on(tmp_path):
    import shutil

    clock = ManualClock(START)
    with capture_logs() as logs, monitor(tmp_path / "monitor", clock) as own:
        shutil.rmtree(tmp_path / "monitor")
        for _ in range(3):
            own.record("/orders", 200, 0.01)  # requests never fail for it
            clock.advance(1)
            assert own.poll()
    assert len(logs.named("monitor_io_failed")) == 1


def test_a_file_that_cannot_be_allocated_degrades_before_any_request(tmp_path, monkeypatch):
    # Sparse, the file would fault (SIGBUS) at a request's first write to a page that a full
    # disk cannot give; its blocks are taken at start-up, where failing only degrades.
    import errno

    def full(_fd: int, _offset: int, _length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    clock = ManualClock(START)
    with capture_logs() as logs, monitor(tmp_path, clock) as own:
        own.record("/orders", 200, 0.01)
        clock.advance(1)
        own.tick()
        assert own.summary()["traffic"]["windows"]["1m"]["requests"] == 1
    (said,) = logs.named("monitor_unshared")
    assert "No space left on device" in said["error"]
    assert not list(tmp_path.glob("rings_*.bin"))


def test_a_state_write_that_failed_is_tried_again(tmp_path, monkeypatch):
    import fender.monitor._monitor as module

    clock = ManualClock(START)
    breakers: list[str] = []
    own = Monitor(
        load_settings({}, env_file=None),
        directory=lambda: tmp_path,
        share_bytes=None,
        open_breakers=lambda: breakers,
        streaks=dict,
        clock=clock,
    )
    own.start()
    try:
        real = module._write_json
        failing = [True]

        def write(path: Path, data: object) -> None:
            if failing[0] and path.name.startswith("state_"):
                raise OSError(28, "No space left on device")
            real(path, data)

        monkeypatch.setattr(module, "_write_json", write)
        breakers.append("payments")
        clock.advance(1)
        assert own.poll()  # said as monitor_io_failed; the request path never sees it
        failing[0] = False
        clock.advance(1)
        assert own.poll()
        state = json.loads((tmp_path / f"state_{os.getpid()}.json").read_text())
        assert state["open_breakers"] == ["payments"]
    finally:
        own.stop()


def test_a_child_forked_by_the_leader_does_not_keep_the_lead(tmp_path):
    clock = ManualClock(START)
    with monitor(tmp_path, clock) as leader:
        leader.tick()
        assert leader._leading
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # a long-lived child (a multiprocessing fork, a background job)
            os.close(write_end)
            os.read(read_end, 1)
            os._exit(0)
        os.close(read_end)
        try:
            leader.stop()  # the leader ends: the lock must be free with the child alive
            other = worker(tmp_path, START, requests=0, errors=0, ticks=1)
            assert other["leading"] is True
        finally:
            os.write(write_end, b"x")
            os.close(write_end)
            os.waitpid(child, 0)
