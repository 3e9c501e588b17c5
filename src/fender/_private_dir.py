"""Directories only this user can write: the drain flag's and the metrics files'.

A directory in a shared place (``/tmp``) that another local user made first, or can write
into, lets that user drain the service, forge its metrics, or plant a symlink that turns a
write of ours into an overwrite of any file we may write. So a directory fender writes its
state into is created ``0700``, and one found there already is used only when it is a real
directory (not a symlink), owned by this user, and writable by nobody else.

Example:
    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> private_dir(base / "run").stat().st_mode & 0o777 == 0o700
    True
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path
from typing import Final

__all__ = ["UnsafeDirectoryError", "check_private", "private_dir", "safe_name", "user_base"]

_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME: Final = 64
_SHARED_BASE: Final = Path("/tmp")  # noqa: S108  (a base per user is made under it, 0700)


class UnsafeDirectoryError(PermissionError):
    """A directory fender would write its state into is not this user's alone."""


def user_base(prefix: str = "fender") -> Path:
    """``/tmp/<prefix>-<uid>``: the same path for every process of this user on the host.

    Not ``$XDG_RUNTIME_DIR`` or ``$TMPDIR``: ``fender drain`` run from a login shell must find
    the flag the server's workers read, whatever the two environments say.
    """
    return _SHARED_BASE / f"{prefix}-{os.geteuid()}"


def safe_name(name: str) -> str:
    """``name`` as one path component: ``[A-Za-z0-9._-]`` kept, the rest ``_``, no leading dot."""
    cleaned = _UNSAFE_NAME.sub("_", name)[:_MAX_NAME].lstrip(".")
    return cleaned or "_"


def private_dir(path: str | Path, *, private_parent: bool = False) -> Path:
    """Create ``path`` (``0700``) if missing, then check it is ours alone; return it.

    Args:
        path: the directory; missing parents are created with the default mode.
        private_parent: create and check the parent the same way first (a per-user base
            under a shared directory, such as :func:`user_base`).

    Raises:
        UnsafeDirectoryError: ``path`` (or the parent asked for) is a symlink, not a
            directory, another user's, or writable by group or others.
        OSError: it could not be created.
    """
    directory = Path(path)
    if private_parent:
        private_dir(directory.parent)
    else:
        directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    check_private(directory)
    return directory


def check_private(path: str | Path) -> None:
    """Raise :class:`UnsafeDirectoryError` unless ``path`` is a directory of ours alone."""
    directory = Path(path)
    info = directory.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeDirectoryError(f"{directory} is a symlink; fender follows none here")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectoryError(f"{directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectoryError(
            f"{directory} belongs to uid {info.st_uid}, not to this user ({os.geteuid()})"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectoryError(
            f"{directory} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
            "chmod go-w it, or point the setting elsewhere"
        )
