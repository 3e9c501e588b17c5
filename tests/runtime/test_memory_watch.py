"""The memory guard's shell: what each decision does, logs and counts; the sampling thread."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY

from fender._clock import ManualClock
from fender.runtime._guard import MemoryWatch, recycle_under_gunicorn, resident_bytes
from fender.runtime._memory import Action, MemoryGuard
from fender.settings import load_settings
from fender.testing import capture_logs

MIB = 2**20


def recycles() -> float:
    return REGISTRY.get_sample_value("memory_recycles_total") or 0.0


class Samples:
    """RSS values handed out in turn (the last one repeats)."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def __call__(self) -> int:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


def watch(samples: Samples, **kwargs) -> tuple[MemoryWatch, list[str]]:
    done: list[str] = []
    guard = MemoryGuard(share_bytes=100 * MIB, clock=ManualClock())
    w = MemoryWatch(
        guard,
        sample=samples,
        collect=lambda: done.append("collect"),
        recycle=kwargs.pop("recycle", lambda: done.append("recycle") or True),
        **kwargs,
    )
    return w, done


def test_high_memory_collects_and_warns_with_before_and_after():
    w, done = watch(Samples(80 * MIB, 60 * MIB))
    with capture_logs(load_settings({}, env_file=None)) as logs:
        assert w.check() is Action.COLLECT
    assert done == ["collect"]
    (event,) = logs.named("memory_high")
    assert (event["rss_mb"], event["after_gc_mb"], event["share_mb"]) == (80.0, 60.0, 100.0)
    assert event["level"] == "warning"


def test_critical_memory_recycles_once_and_counts():
    before = recycles()
    w, done = watch(Samples(90 * MIB))
    with capture_logs(load_settings({}, env_file=None)) as logs:
        assert w.check() is Action.RECYCLE
        assert w.check() is Action.NONE
    assert done == ["recycle"]
    assert recycles() == before + 1
    (event,) = logs.named("memory_critical")
    assert event["action"] == "recycle"


def test_a_process_nobody_restarts_is_not_recycled_and_says_so():
    w, _ = watch(Samples(95 * MIB), recycle=lambda: False)
    with capture_logs(load_settings({}, env_file=None)) as logs:
        w.check()
    (event,) = logs.named("memory_critical")
    assert event["action"].startswith("none")


def test_back_to_normal_is_said_once():
    w, _ = watch(Samples(80 * MIB, 80 * MIB, 10 * MIB))
    with capture_logs(load_settings({}, env_file=None)) as logs:
        w.check()
        w.check()
        w.check()
    assert len(logs.named("memory_ok")) == 1


def test_the_thread_samples_until_stopped():
    sampled = threading.Event()
    guard = MemoryGuard(share_bytes=100 * MIB, clock=ManualClock())
    w = MemoryWatch(guard, interval=0.001, sample=lambda: sampled.set() or 1)
    w.start()
    try:
        assert sampled.wait(10)
    finally:
        w.stop()
    assert w._thread is None


def test_real_samples_and_no_recycle_outside_gunicorn(monkeypatch):
    monkeypatch.delenv("SERVER_SOFTWARE", raising=False)
    assert resident_bytes() > 10 * MIB
    assert recycle_under_gunicorn() is False
