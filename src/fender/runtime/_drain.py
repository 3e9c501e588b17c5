"""The drain flag: one file in the runtime directory shared by every worker of a server.

Under gunicorn, SIGTERM closes the listening socket at once, so readiness flipped inside the app
after SIGTERM is never seen by the load balancer. Draining therefore happens *before* SIGTERM:
``fender drain`` (a Kubernetes preStop hook) or ``POST /health/drain`` writes the flag, every
worker notices it within a poll interval and turns readiness to 503, and the hook waits
FENDER_DRAIN_SECONDS before the container gets its SIGTERM.

A flag older than the server itself (the gunicorn master, or this process when alone) is left
over from an earlier run and is ignored.

The directory is this service's and this user's alone: by default
``/tmp/fender-<uid>/<service name>`` (two services on one host never drain each other), created
``0700``, and refused (:class:`~fender._private_dir.UnsafeDirectoryError`, an ``OSError``) when
it is a symlink, another user's, or writable by group or others: a local user who could
create the flag could drain the service. The flag is written without following a symlink.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import time
from pathlib import Path
from typing import Final

from fender._private_dir import (
    UnsafeDirectoryError,
    check_private,
    private_dir,
    safe_name,
    user_base,
)
from fender._server import under_gunicorn
from fender.settings import Settings, field_default

__all__ = [
    "DRAIN_FILE",
    "clear_drain",
    "drain_flag",
    "is_draining",
    "request_drain",
    "runtime_directory",
    "server_started_at",
]

DRAIN_FILE: Final = "drain"
_DEFAULT_DIR: Final[str] = field_default("runtime_dir")
_NEW_FILE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def runtime_directory(settings: Settings) -> Path:
    """The directory of the drain flag: FENDER_RUNTIME_DIR, or by default one per service.

    The default (``/tmp/fender``) stands for ``/tmp/fender-<uid>/<FENDER_SERVICE_NAME>``: the
    same for every worker and for ``fender drain`` of one service run by one user.
    """
    if settings.runtime_dir != _DEFAULT_DIR:
        return Path(settings.runtime_dir)
    return user_base() / safe_name(settings.service_name)


def _is_default_layout(directory: Path) -> bool:
    return directory.parent == user_base()


def drain_flag(runtime_dir: str | Path) -> Path:
    """Path of the drain flag in ``runtime_dir``."""
    return Path(runtime_dir) / DRAIN_FILE


def request_drain(runtime_dir: str | Path, reason: str = "drain requested") -> Path:
    """Write the drain flag (atomically, following no symlink) and return its path.

    Raises:
        UnsafeDirectoryError: the directory is not this user's alone (see the module).
        OSError: it could not be created or written.
    """
    directory = Path(runtime_dir)
    private_dir(directory, private_parent=_is_default_layout(directory))
    # Relative to the directory opened once (no symlink in its last step): a swap of the
    # directory after the check cannot redirect the writes.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _check_fd(fd, directory)
        temporary = f"{DRAIN_FILE}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=fd)
        file = os.open(temporary, _NEW_FILE, 0o600, dir_fd=fd)
        try:
            os.write(file, f"{time.time():.3f} {reason}\n".encode())
        finally:
            os.close(file)
        # rename() replaces a symlink planted at the flag's name, never its target
        os.replace(temporary, DRAIN_FILE, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)
    return drain_flag(directory)


def _check_fd(fd: int, directory: Path) -> None:
    """:func:`~fender._private_dir.check_private` of an open directory."""
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectoryError(f"{directory} changed owner or mode while in use")


def clear_drain(runtime_dir: str | Path) -> None:
    """Remove the drain flag (at the start of a new server)."""
    drain_flag(runtime_dir).unlink(missing_ok=True)


@functools.cache
def _started_at(pid: int) -> float:  # noqa: ARG001  (the cache key: a forked worker recomputes)
    import psutil

    process = psutil.Process()
    if under_gunicorn():
        try:
            return float(psutil.Process(os.getppid()).create_time())
        except psutil.Error:
            pass
    return float(process.create_time())


def server_started_at() -> float:
    """Epoch seconds when this server began: the gunicorn master's start, else this process's.

    Computed once per process (a forked worker computes its own).
    """
    return _started_at(os.getpid())


def is_draining(runtime_dir: str | Path, started_at: float) -> bool:
    """True when a drain flag newer than ``started_at`` exists, in a directory of ours alone.

    A flag in a directory someone else can write, or a symlink, drains nothing: whoever
    could put it there is not who may drain the service.
    """
    try:
        check_private(runtime_dir)
        info = drain_flag(runtime_dir).lstat()
    except OSError:  # missing, or not ours
        return False
    return stat.S_ISREG(info.st_mode) and info.st_mtime >= started_at
