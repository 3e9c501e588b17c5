"""Twins keep identical verbs: each sync class and its asyncio twin expose the same methods.

The same public names with the same parameters, ``def x`` on the sync side and ``async def x``
on the asyncio side; the one allowed pairing of different names is ``close``/``aclose``. And the
two probers keep the same rules, so that a store heals in both flavours.
"""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest

from fender.cache import AsyncCache, Cache
from fender.redis import AsyncResilientRedis, ResilientRedis
from fender.stores._prober import TaskProber, ThreadProber

TWINS = [
    pytest.param(ResilientRedis, AsyncResilientRedis, id="store"),
    pytest.param(Cache, AsyncCache, id="cache"),
    pytest.param(ThreadProber, TaskProber, id="prober"),
]
ASYNC_NAMES = {"close": "aclose"}


def public(cls: type) -> dict[str, object]:
    return {
        name: inspect.getattr_static(cls, name) for name in dir(cls) if not name.startswith("_")
    }


def parameters(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize(("sync", "asynchronous"), TWINS)
def test_twins_have_the_same_public_names(sync, asynchronous):
    expected = {ASYNC_NAMES.get(name, name) for name in public(sync)}
    assert set(public(asynchronous)) == expected


@pytest.mark.parametrize(("sync", "asynchronous"), TWINS)
def test_twin_methods_agree_in_kind_and_parameters(sync, asynchronous):
    twins = public(asynchronous)
    for name, attribute in public(sync).items():
        twin = twins[ASYNC_NAMES.get(name, name)]
        if isinstance(attribute, property):
            assert isinstance(twin, property), name
            continue
        assert not inspect.iscoroutinefunction(attribute), name
        # A method that does no I/O (a prober's wake) may stay plain on the asyncio side.
        if inspect.iscoroutinefunction(twin) or name == "wake":
            assert parameters(attribute) == parameters(twin), name
        else:
            pytest.fail(f"{asynchronous.__name__}.{name} is not a coroutine function")


# -- the probers heal alike ----------------------------------------------------------------------


def test_the_thread_prober_starts_again_for_work_that_came_after_its_last_probe():
    probes: list[int] = []
    second = threading.Event()

    def probe() -> bool:
        probes.append(1)
        if len(probes) == 2:
            second.set()
        return True  # nothing left... but a write came in meanwhile (needed, below)

    prober = ThreadProber(
        store="twins", interval=0.001, probe=probe, needed=lambda: len(probes) < 2
    )
    prober.wake()
    assert second.wait(10.0)
    prober.stop()
    assert len(probes) == 2
    assert not prober.running


def test_the_task_prober_starts_again_for_work_that_came_after_its_last_probe():
    async def scenario() -> int:
        probes: list[int] = []
        second = asyncio.Event()

        async def probe() -> bool:
            probes.append(1)
            if len(probes) == 2:
                second.set()
            return True

        prober = TaskProber(
            store="twins", interval=0.001, probe=probe, needed=lambda: len(probes) < 2
        )
        prober.wake()
        await asyncio.wait_for(second.wait(), 10.0)
        await prober.stop()
        assert not prober.running
        return len(probes)

    assert asyncio.run(scenario()) == 2


@pytest.mark.parametrize("flavour", ["thread", "task"])
def test_a_stopped_prober_never_starts_again(flavour):
    def probe() -> bool:
        raise AssertionError("a stopped prober probed")

    async def aprobe() -> bool:
        return probe()

    if flavour == "thread":
        thread_prober = ThreadProber(store="twins", interval=0.001, probe=probe, needed=bool)
        thread_prober.stop()
        thread_prober.wake()
        assert not thread_prober.running
        return

    async def scenario() -> None:
        task_prober = TaskProber(store="twins", interval=0.001, probe=aprobe, needed=bool)
        await task_prober.stop()
        task_prober.wake()
        assert not task_prober.running

    asyncio.run(scenario())


def test_the_task_prober_of_a_closed_loop_is_replaced_on_the_next_loop():
    probed: list[asyncio.Event] = []  # set by the next probe, on whichever loop runs it

    async def probe() -> bool:
        for event in probed:
            event.set()
        return False  # Redis still down: probe again

    prober = TaskProber(store="twins", interval=0.001, probe=probe, needed=lambda: True)

    async def strand() -> asyncio.Task[None] | None:
        probed.append(asyncio.Event())
        prober.wake()
        await asyncio.wait_for(probed[0].wait(), 10.0)  # the task runs: it has probed once
        probed.clear()
        return prober._task

    first = asyncio.new_event_loop()
    stranded = first.run_until_complete(strand())
    first.close()  # without cancelling the prober's task, which never finishes
    assert stranded is not None

    async def heal() -> None:
        probed.append(asyncio.Event())
        prober.wake()
        await asyncio.wait_for(probed[0].wait(), 10.0)
        await prober.stop()
        assert not prober.running

    asyncio.run(heal())
    # Closed as garbage collection would close it: it must not forget its successor.
    stranded.get_coro().close()  # type: ignore[union-attr]
    stranded._log_destroy_pending = False  # type: ignore[attr-defined]
