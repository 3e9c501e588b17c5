"""Health checks as metrics: runs by status, and the failure streak the alert rules read."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from fender import Status
from fender.health import HealthConfig, HealthRegistry
from fender.health._metrics import HealthMetrics


def streak(check: str) -> float | None:
    return REGISTRY.get_sample_value("health_check_consecutive_failures", {"check": check})


def runs(check: str, status: str) -> float:
    value = REGISTRY.get_sample_value("health_checks_total", {"check": check, "status": status})
    return value or 0.0


@pytest.fixture
def registry():
    reg = HealthRegistry(HealthConfig(deadline=10.0))
    yield reg
    reg.close()


def test_the_streak_counts_failures_in_a_row_and_a_pass_or_warn_resets_it(registry):
    answers = iter([False, False, Status.WARN, False, False, False, True])
    registry.add(lambda: next(answers), name="metrics-flaky")
    registry.add_listener(HealthMetrics())
    seen = []
    for _ in range(7):
        registry.run_sync()
        seen.append(streak("metrics-flaky"))
    assert seen == [1, 2, 0, 1, 2, 3, 0]
    assert runs("metrics-flaky", "fail") == 5
    assert runs("metrics-flaky", "warn") == 1
    assert runs("metrics-flaky", "pass") == 1


def test_a_check_that_raises_or_times_out_counts_as_a_failure(registry):
    def broken() -> None:
        raise ConnectionError("down")

    registry.add(broken, name="metrics-broken")
    registry.add_listener(HealthMetrics())
    registry.run_sync()
    registry.run_sync()
    assert streak("metrics-broken") == 2
    assert runs("metrics-broken", "fail") == 2


def test_cache_hits_are_not_counted_as_runs(registry):
    registry.add(lambda: False, name="metrics-cached", cache_ttl=3600)
    registry.add_listener(HealthMetrics())
    registry.run_sync()
    registry.run_sync()
    assert runs("metrics-cached", "fail") == 1
    assert streak("metrics-cached") == 1


def test_an_app_exports_its_checks(tmp_path):
    """Wired by the runtime: the built-in checks a built app runs show in the metrics."""
    import httpx
    from flask import Flask

    from fender.flask import Fender

    app = Flask(__name__)
    Fender(app, env="development", runtime_dir=str(tmp_path))
    before = runs("disk", "pass") + runs("disk", "warn")
    transport = httpx.WSGITransport(app=app, remote_addr="127.0.0.1")
    with httpx.Client(transport=transport, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/health/detailed").status_code == 200
    assert runs("disk", "pass") + runs("disk", "warn") > before
    assert streak("disk") == 0
