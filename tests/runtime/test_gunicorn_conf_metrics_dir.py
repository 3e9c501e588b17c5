"""The multiprocess directory fender makes for a gunicorn run is fresh at start and removed at
exit; one the user names is emptied at start and left in place."""

from __future__ import annotations

import os

import pytest

from fender import _private_dir
from fender.runtime import gunicorn_conf


@pytest.fixture(autouse=True)
def environ(monkeypatch):
    """The hooks export variables for gunicorn's workers: keep them out of this process."""
    copy = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    monkeypatch.setattr(os, "environ", copy)
    return copy


def test_fenders_own_directory_is_removed_at_exit(monkeypatch, tmp_path):
    monkeypatch.setattr(_private_dir, "_SHARED_BASE", tmp_path)
    directory = tmp_path / f"fender-{os.geteuid()}" / "metrics-4242"
    directory.mkdir(parents=True, mode=0o700)
    directory.parent.chmod(0o700)
    (directory / "counter_1.db").write_bytes(b"old run")
    assert gunicorn_conf.prepare_metrics_dir(4242) == str(directory)
    assert list(directory.iterdir()) == []  # a previous master's files are gone
    (directory / "counter_2.db").write_bytes(b"this run")
    gunicorn_conf.on_exit(None)
    assert not directory.exists()


def test_a_directory_the_user_names_stays(environ, tmp_path):
    mine = tmp_path / "metrics"
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(mine)
    assert gunicorn_conf.prepare_metrics_dir(4242) == str(mine)
    gunicorn_conf.on_exit(None)
    assert mine.is_dir()
