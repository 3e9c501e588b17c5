"""`fender workers` and `fender run --dry-run`: the plan, as people and machines read it."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from fender.cli import main
from fender.runtime._serve import THREAD_WORKER


@pytest.fixture
def app_dir(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("FENDER_", "WEB_WORKERS", "GUNICORN_", "MEMORY_LIMIT_MB", "PORT")):
            monkeypatch.delenv(name)
    (tmp_path / "asgi_app.py").write_text(
        textwrap.dedent(
            """
            from fastapi import FastAPI

            app = FastAPI()
            """
        )
    )
    (tmp_path / "wsgi_app.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask

            def create_app():
                return Flask(__name__)
            """
        )
    )
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('no database here')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_the_table_names_each_input_and_the_reason(app_dir, monkeypatch, capsys):
    monkeypatch.setenv("MEMORY_LIMIT_MB", "512")
    assert main(["workers", "asgi_app:app"]) == 0
    out = capsys.readouterr().out
    assert "fender.runtime.uvicorn_worker.UvicornWorker" in out
    assert "512 MiB" in out
    assert "MEMORY_LIMIT_MB" in out
    last = out.strip().splitlines()[-1].split()
    assert last[0] == "workers"
    assert last[-1] in {"memory", "cpu"}


def test_json_is_the_plan_fender_run_would_serve(app_dir, monkeypatch, capsys):
    monkeypatch.setenv("MEMORY_LIMIT_MB", "512")
    assert main(["workers", "--json", "wsgi_app:create_app()"]) == 0
    workers = json.loads(capsys.readouterr().out)
    assert main(["run", "--dry-run", "wsgi_app:create_app()"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert workers["app_kind"] == run["app_kind"] == "wsgi"
    assert workers["worker_class"] == run["worker_class"] == THREAD_WORKER
    assert workers["workers"] == run["workers"]
    assert workers["container"]["memory_limit_mb"] == 512


def test_over_budget_override_warns(app_dir, monkeypatch, capsys):
    monkeypatch.setenv("MEMORY_LIMIT_MB", "512")
    monkeypatch.setenv("WEB_WORKERS", "33")
    assert main(["run", "--dry-run", "asgi_app:app"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["workers"] < 33
    assert "33 workers asked for" in captured.err


def test_measure_imports_the_app_in_a_child(app_dir, capsys):
    assert main(["workers", "--json", "--measure", "asgi_app:app"]) == 0
    plan = json.loads(capsys.readouterr().out)
    inputs = plan["worker_plan"]["inputs"]
    assert inputs["sources"]["per_worker_mb"] == "measured"
    assert 10 < inputs["per_worker_mb"] < 1024


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["workers", "missing_module:app"], "No module named 'missing_module'"),
        (["workers", "asgi_app:nothing"], "AttributeError"),
        (["workers", "wsgi_app:create_app(1)"], "module:factory()"),
        (["run", "--dry-run", "no_colon"], "module:attr"),
        (["workers", "--measure", "broken_app:app"], "no database here"),
        (["workers", "--measure"], "--measure needs the app"),
    ],
)
def test_bad_apps_get_one_clear_line(app_dir, capsys, argv, says):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err
