"""The worker count: min(CPU formula, memory budget), each bound with its reason."""

from __future__ import annotations

import pytest

from fender.errors import ConfigurationError
from fender.runtime._workers import WorkerInputs, plan_workers

MIB = 2**20


@pytest.mark.parametrize(
    ("inputs", "workers", "reason"),
    [
        pytest.param(
            {"cpus": 64, "memory_bytes": 512 * MIB, "per_worker_mb": 128, "master_rss_mb": 50},
            2,
            "memory",
            id="64-cores-512MiB-memory-bound",
        ),
        pytest.param(
            {"cpus": 1, "memory_bytes": 24 * 1024 * MIB, "per_worker_mb": 128},
            3,
            "cpu",
            id="1-cpu-quota-big-host-sync",
        ),
        pytest.param(
            {"cpus": 1, "memory_bytes": 24 * 1024 * MIB, "per_worker_mb": 128, "kind": "async"},
            2,
            "cpu",
            id="1-cpu-async",
        ),
        pytest.param(
            {"cpus": 4, "memory_bytes": None, "per_worker_mb": 128},
            9,
            "cpu",
            id="no-memory-limit",
        ),
        pytest.param(
            {"cpus": 8, "memory_bytes": 256 * MIB, "per_worker_mb": 512},
            1,
            "memory",
            id="at-least-one-worker",
        ),
        pytest.param(
            {"cpus": 2, "memory_bytes": 4096 * MIB, "per_worker_mb": 64, "override": 3},
            3,
            "override",
            id="override-within-budget",
        ),
    ],
)
def test_worker_table(inputs, workers, reason):
    plan = plan_workers(WorkerInputs(**inputs))
    assert (plan.workers, plan.reason) == (workers, reason)
    assert plan.workers >= 1
    assert plan.warnings == ()


def test_override_over_the_memory_budget_is_capped_with_a_warning():
    plan = plan_workers(
        WorkerInputs(
            cpus=2, memory_bytes=512 * MIB, per_worker_mb=128, master_rss_mb=50, override=33
        )
    )
    assert (plan.workers, plan.reason) == (2, "override capped by memory")
    (warning,) = plan.warnings
    assert "33 workers asked for" in warning
    assert "capped at 2" in warning


def test_plan_describes_itself_for_json():
    plan = plan_workers(
        WorkerInputs(
            cpus=2, memory_bytes=512 * MIB, per_worker_mb=128, sources={"cpus": "affinity"}
        )
    )
    described = plan.as_dict()
    assert described["workers"] == 3
    assert described["cpu_workers"] == 5
    assert described["memory_workers"] == 3
    assert described["inputs"]["sources"] == {"cpus": "affinity"}


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("cpus", 0, "cpus"),
        ("per_worker_mb", 0, "FENDER_WORKER_MEMORY_MB"),
        ("budget", 1.5, "budget"),
        ("override", 0, "WEB_WORKERS"),
        ("kind", "eventlet", "worker_class"),
    ],
)
def test_bad_inputs_are_named(field, value, name):
    inputs = {"cpus": 1, "memory_bytes": None, "per_worker_mb": 128, field: value}
    with pytest.raises(ConfigurationError) as raised:
        WorkerInputs(**inputs)
    assert raised.value.field == name
