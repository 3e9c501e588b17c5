"""The celery check against a real redis broker and a real celery worker process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery

from fender._status import Status
from fender.health import celery_check

from servers import free_port, wait_for

pytestmark = pytest.mark.redis

BIN = Path(sys.executable).parent
TASKS = "import os\nfrom celery import Celery\napp = Celery('tasks', broker=os.environ['BROKER'])\n"


def worker_environment() -> dict[str, str]:
    # A DJANGO_SETTINGS_MODULE would load celery's Django fixup: this worker has only tasks.py.
    return {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}


def run(app: Celery):
    return celery_check(app, timeout=0.5).func()


def test_an_unreachable_broker_is_said_so():
    result = run(Celery("t", broker=f"redis://127.0.0.1:{free_port()}/0"))
    assert result.status is Status.FAIL
    assert result.output.startswith("broker unreachable")


def test_a_broker_without_workers_is_said_so(redis_url):
    result = run(Celery("t", broker=redis_url))
    assert result.status is Status.FAIL
    assert result.output == "broker up, no worker replied within 0.5s"


def test_a_live_worker_passes(redis_url, tmp_path):
    (tmp_path / "tasks.py").write_text(TASKS)
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [str(BIN / "celery"), "-A", "tasks", "worker", "--pool", "solo", "--loglevel", "INFO"],
            cwd=tmp_path, env={**worker_environment(), "BROKER": redis_url},
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        app = Celery("t", broker=redis_url)
        results = []

        def answered() -> bool:
            # A worker that died will never answer: say why at once.
            assert worker.poll() is None, log.read_text(errors="replace")
            # The passing result itself is checked: a second ping may miss its window on a
            # loaded machine.
            results.append(run(app))
            return results[-1].status is Status.PASS

        try:
            wait_for(answered, 120, "the worker answering ping")
        except TimeoutError:
            pytest.fail(f"{results[-1:]}; the worker's log:\n{log.read_text(errors='replace')}")
        assert (results[-1].observed_value, results[-1].observed_unit) == (1, "workers")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(5)


def test_celery_broker_url_adds_the_check(redis_url):
    from fastapi import FastAPI

    import fender

    runtime = fender.install(FastAPI(), env="development", celery_broker_url=redis_url)
    (check,) = [c for c in runtime.health.select() if c.name == "celery"]
    assert check.critical is False
    assert check.func().output == "broker up, no worker replied within 1s"
