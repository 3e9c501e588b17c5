"""`fender doctor` judges the worker count against the container's memory."""

from __future__ import annotations

from fender._status import Status
from fender.doctor import diagnose


def workers_finding(**environ: str):
    report = diagnose({"FENDER_ENV": "development", **environ}, env_file=None)
    (finding,) = [f for f in report.findings if f.check == "workers"]
    return finding


def test_an_override_over_85_percent_of_the_limit_fails():
    finding = workers_finding(MEMORY_LIMIT_MB="512", WEB_WORKERS="8")
    assert finding.status is Status.FAIL
    assert finding.field == "WEB_WORKERS"
    assert "8 workers x 128 MiB = 1024 MiB" in finding.reason
    assert "OOM" in finding.reason


def test_gunicorn_workers_is_the_same_override():
    finding = workers_finding(
        MEMORY_LIMIT_MB="512", GUNICORN_WORKERS="4", FENDER_WORKER_MEMORY_MB="200"
    )
    assert finding.status is Status.FAIL


def test_the_computed_count_fits():
    finding = workers_finding(MEMORY_LIMIT_MB="512")
    assert finding.status is Status.PASS
    assert "fit in 512 MiB" in finding.reason


def test_an_override_within_the_limit_passes():
    finding = workers_finding(MEMORY_LIMIT_MB="2048", WEB_WORKERS="4")
    assert finding.status is Status.PASS
