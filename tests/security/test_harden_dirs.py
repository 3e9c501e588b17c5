"""Runtime directories are one service's and one user's: no shared flag, no planted symlink.

Replays the adversarial pass with real files: two services on one host shared /tmp/fender (one
drain drained both), another user could create the flag, a symlink made the drain overwrite a
root-owned file, and a metrics directory another user made first was adopted. The test runs
as root, so "another user" is a directory chowned to an unused uid.
"""

from __future__ import annotations

import os
import time

import pytest

from fender import _private_dir
from fender._private_dir import UnsafeDirectoryError, check_private, private_dir
from fender.errors import ConfigurationError
from fender.observability._metrics import auto_dir
from fender.runtime import gunicorn_conf
from fender.runtime._drain import is_draining, request_drain, runtime_directory
from fender.settings import load_settings

OTHER_UID = 54321


@pytest.fixture
def shared_tmp(monkeypatch, tmp_path):
    """A stand-in for the host's /tmp: world-writable with the sticky bit."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setattr(_private_dir, "_SHARED_BASE", shared)
    return shared


def settings(**env):
    return load_settings({"FENDER_ENV": "development", **env}, env_file=None)


def test_two_services_on_one_host_have_their_own_drain_flags(shared_tmp):
    billing = runtime_directory(settings(FENDER_SERVICE_NAME="billing"))
    search = runtime_directory(settings(FENDER_SERVICE_NAME="search"))
    assert billing != search
    assert billing.parent == search.parent == shared_tmp / f"fender-{os.geteuid()}"
    request_drain(billing, "fender drain")
    assert is_draining(billing, 0)
    assert not is_draining(search, 0)
    assert billing.stat().st_mode & 0o777 == 0o700
    assert billing.parent.stat().st_mode & 0o777 == 0o700


def test_a_service_name_cannot_climb_out_of_the_base(shared_tmp):
    directory = runtime_directory(settings(FENDER_SERVICE_NAME="../../etc"))
    assert directory.parent == shared_tmp / f"fender-{os.geteuid()}"
    assert directory.name not in {".", ".."}
    assert directory.resolve().parent == directory.parent.resolve()


def test_an_explicit_runtime_dir_is_used_as_it_is(tmp_path):
    assert runtime_directory(settings(FENDER_RUNTIME_DIR=str(tmp_path / "run"))) == tmp_path / "run"


def test_a_base_another_user_made_first_is_refused(shared_tmp):
    base = shared_tmp / f"fender-{os.geteuid()}"
    base.mkdir(mode=0o700)
    os.chown(base, OTHER_UID, OTHER_UID)
    directory = runtime_directory(settings(FENDER_SERVICE_NAME="billing"))
    with pytest.raises(UnsafeDirectoryError, match="belongs to uid 54321"):
        request_drain(directory)
    assert not (base / "billing").exists()


def test_a_flag_another_user_could_write_drains_nothing(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    (theirs / "drain").write_text("0 forged\n")
    os.chown(theirs, OTHER_UID, OTHER_UID)
    assert not is_draining(theirs, 0)
    with pytest.raises(UnsafeDirectoryError):
        request_drain(theirs)

    open_to_all = tmp_path / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    (open_to_all / "drain").write_text("0 forged\n")
    assert not is_draining(open_to_all, 0)
    with pytest.raises(UnsafeDirectoryError, match="writable by group or others"):
        request_drain(open_to_all)


def test_a_symlinked_runtime_dir_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "run"
    link.symlink_to(target)
    with pytest.raises(UnsafeDirectoryError, match="symlink"):
        request_drain(link)
    assert list(target.iterdir()) == []
    (target / "drain").write_text("1 planted\n")
    assert not is_draining(link, 0)


def test_a_symlink_planted_at_the_flag_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    run = private_dir(tmp_path / "run")
    (run / "drain").symlink_to(victim)
    (run / f"drain.{os.getpid()}.tmp").symlink_to(victim)
    assert not is_draining(run, 0)  # a symlink is no flag
    flag = request_drain(run, "POST /health/drain")
    assert victim.read_text() == "root's file\n"
    assert not flag.is_symlink()
    assert flag.read_text().endswith("POST /health/drain\n")
    assert flag.stat().st_mode & 0o777 == 0o600
    assert is_draining(run, time.time() - 60)


def test_a_stale_flag_before_the_server_started_is_ignored(tmp_path):
    run = tmp_path / "run"
    request_drain(run)
    assert is_draining(run, 0)
    assert not is_draining(run, time.time() + 60)


def test_check_private_accepts_only_a_directory_of_ours(tmp_path):
    check_private(private_dir(tmp_path / "mine"))
    (tmp_path / "file").write_text("")
    with pytest.raises(UnsafeDirectoryError, match="not a directory"):
        check_private(tmp_path / "file")


# --- the multiprocess metrics directory ---------------------------------------------------------


@pytest.fixture
def environ(monkeypatch):
    copy = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    monkeypatch.setattr(os, "environ", copy)
    return copy


def test_the_metrics_directory_is_under_the_users_own_base(shared_tmp, environ):
    directory = gunicorn_conf.prepare_metrics_dir(4242)
    assert directory == str(auto_dir(4242))
    assert auto_dir(4242).parent == shared_tmp / f"fender-{os.geteuid()}"
    assert auto_dir(4242).stat().st_mode & 0o777 == 0o700
    gunicorn_conf.on_exit(None)


def test_a_metrics_directory_another_user_made_is_never_adopted(shared_tmp, environ):
    forged = auto_dir(4242)
    forged.parent.mkdir(mode=0o700)
    forged.mkdir(mode=0o777)
    forged.chmod(0o777)
    (forged / "counter_999.db").write_bytes(b"forged values")
    os.chown(forged, OTHER_UID, OTHER_UID)
    with pytest.raises(ConfigurationError, match="PROMETHEUS_MULTIPROC_DIR"):
        gunicorn_conf.prepare_metrics_dir(4242)
    assert "PROMETHEUS_MULTIPROC_DIR" not in environ


def test_a_named_metrics_directory_open_to_others_is_refused(tmp_path, environ):
    shared = tmp_path / "metrics"
    shared.mkdir()
    shared.chmod(0o777)
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    with pytest.raises(ConfigurationError, match="writable by group or others"):
        gunicorn_conf.prepare_metrics_dir(4242)
