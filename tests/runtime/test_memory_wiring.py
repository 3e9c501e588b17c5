"""The worker's memory share, the memory check, the container and per-process metrics."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

import fender
from fender.app._memory import WORKER_COUNT_VARIABLE, MemoryPlan, memory_plan, worker_count
from fender.observability._process import WorkerProcessCollector, worker_pids
from fender.settings import load_settings

MIB = 2**20


@pytest.mark.parametrize(("value", "count"), [("", 1), ("4", 4), ("0", 1), ("x", 1)])
def test_worker_count_from_the_master(monkeypatch, value, count):
    monkeypatch.setenv(WORKER_COUNT_VARIABLE, value)
    assert worker_count() == count


def test_share_is_the_limit_split_among_workers(monkeypatch):
    monkeypatch.setenv(WORKER_COUNT_VARIABLE, "4")
    plan = memory_plan(load_settings({"MEMORY_LIMIT_MB": "512"}, env_file=None))
    assert plan.share_bytes == 128 * MIB
    assert plan.limits.memory_source == "MEMORY_LIMIT_MB"


def test_container_limit_is_exposed():
    memory_plan(load_settings({}, env_file=None))
    limit = REGISTRY.get_sample_value("container_memory_limit_bytes")
    # The first plan of the process registered the collector; its limit is the one it read.
    assert limit is not None
    assert limit > 0


def test_memory_check_judges_the_worker_share(monkeypatch):
    monkeypatch.setenv(WORKER_COUNT_VARIABLE, "2")
    app = FastAPI()
    fender.install(app, env="development", memory_limit_mb=4096, admin_policy="always")

    async def detailed() -> dict:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            return (await client.get("/health/detailed")).json()

    memory = _find_memory(asyncio.run(detailed()))
    assert memory["limit_bytes"] == 2048 * MIB


def _find_memory(body: dict) -> dict:
    """The memory check's details wherever the detailed format puts them."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "limit_bytes" in item and "rss_bytes" in item:
                return item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise AssertionError(f"no memory details in {body}")


def test_process_collector_reads_workers_and_master(tmp_path):
    me = os.getpid()
    (tmp_path / f"counter_{me}.db").write_bytes(b"")
    (tmp_path / "gauge_livesum_999999999.db").write_bytes(b"")  # a pid that does not exist
    (tmp_path / "notes.txt").write_text("ignored")
    assert worker_pids(str(tmp_path)) == {me, 999999999}
    families = {f.name: f for f in WorkerProcessCollector(str(tmp_path)).collect()}
    rss = {s.labels["pid"]: s for s in families["process_resident_memory_bytes"].samples}
    assert rss[str(me)].labels["role"] == "worker"
    assert rss[str(os.getppid())].labels["role"] == "master"
    assert "999999999" not in rss
    assert rss[str(me)].value > 10 * MIB
    assert {s.labels["pid"] for s in families["process_open_fds"].samples} == set(rss)


def test_plan_without_a_limit_has_no_share():
    from fender.runtime._container import ContainerLimits

    limits = ContainerLimits(
        memory_bytes=None,
        memory_source="none",
        cpus=None,
        cpu_source="affinity",
        affinity=1,
        host_memory_bytes=None,
        version="none",
    )
    assert MemoryPlan(limits, 3).share_bytes is None
