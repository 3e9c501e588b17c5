"""The log file (FENDER_LOG_FILE): whole lines appended, rotated by size, shared by processes.

gunicorn's workers all write the one file. A ``RotatingFileHandler`` per process breaks
there: each rotates on its own idea of the size, renames files another one still writes, and
lines go to deleted files or are cut. :class:`RotatingFile` instead:

* opens the file ``O_APPEND``: each line is one ``write`` at the end, never interleaved;
* holds an ``flock`` on ``<file>.lock`` while it checks the size, rotates when the line would
  not fit, and writes: no process writes while another renames, and no two find room for
  their lines in the same last bytes;
* finds the file at its path under that lock (one ``stat``): when another process rotated it
  (the inode changed) or it is gone, it opens the new one;
* reopens its descriptors in a forked child (gunicorn's workers are forks of the master,
  and a lock shared with the parent's descriptor excludes nothing).

A file holds at most FENDER_LOG_FILE_MAX_MB (a single longer line alone excepted), and
FENDER_LOG_FILE_BACKUPS old files (``<file>.1`` the newest) are kept. A rotation that fails
(the directory turned read-only) is said once, as a line in the file, and the process keeps
appending without rotating.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Final

import orjson

from fender.errors import ConfigurationError
from fender.observability._logoutput import write_all
from fender.settings import Settings, env_name

__all__ = ["RotatingFile", "open_log_file"]

_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_MODE: Final = 0o666  # less the umask, as any log file the process creates
_MIB: Final = 1024 * 1024


class RotatingFile:
    """Appends lines to ``path``, rotated past ``max_bytes`` keeping ``backups`` old files.

    Safe for threads and for processes sharing the path (see the module). ``write`` is the
    line writer fender's handlers take.
    """

    __slots__ = (
        "__weakref__",
        "_backups",
        "_closed",
        "_fd",
        "_inode",
        "_lock_fd",
        "_max_bytes",
        "_mutex",
        "_rotating",
        "path",
    )

    def __init__(self, path: str, *, max_bytes: int, backups: int) -> None:
        """Open ``path`` (created if missing) and its lock file; OSError if either fails."""
        if max_bytes < 1:
            raise ConfigurationError("max_bytes", max_bytes, "1 or more")
        if backups < 1:
            raise ConfigurationError("backups", backups, "1 or more")
        self.path = str(Path(path).absolute())  # a later chdir must not start a second file
        self._max_bytes = max_bytes
        self._backups = backups
        self._mutex = threading.Lock()
        self._closed = False
        self._rotating = True
        self._fd = self._inode = self._lock_fd = -1
        self._open()
        owner = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reopen_in_child(owner))

    def write(self, data: bytes) -> None:
        """Append ``data`` (whole lines) with one ``write``, rotating the file first if due."""
        with self._mutex:
            if self._closed:
                return
            # Exclusive for the size check, the rotation and the write together: a shared
            # lock would let two processes both find room for their line, and overfill.
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                size = self._current_size()
                if size and size + len(data) > self._max_bytes and self._rotating:
                    self._rotate()
                write_all(self._fd, data)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the file; later writes are dropped."""
        with self._mutex:
            if not self._closed:
                self._closed = True
                os.close(self._fd)
                os.close(self._lock_fd)

    def _open(self) -> None:
        fd = os.open(self.path, _FLAGS, _MODE)
        try:
            lock_fd = os.open(self.path + ".lock", _FLAGS, _MODE)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._lock_fd = fd, lock_fd
        self._inode = os.fstat(fd).st_ino

    def _reopen(self) -> None:
        old = self._fd
        self._fd = os.open(self.path, _FLAGS, _MODE)
        self._inode = os.fstat(self._fd).st_ino
        os.close(old)

    def _current_size(self) -> int:
        """The size of the file at the path, after opening it if it is not ours any more."""
        try:
            stat = os.stat(self.path)  # noqa: PTH116  (per line: no Path object made)
        except FileNotFoundError:
            stat = None
        if stat is None or stat.st_ino != self._inode:
            self._reopen()  # rotated by another process, or removed
            stat = os.fstat(self._fd)
        return stat.st_size

    def _rotate(self) -> None:
        """``<file>.N-1`` -> ``<file>.N`` ... ``<file>`` -> ``<file>.1``, then a fresh file."""
        try:
            for index in range(self._backups - 1, 0, -1):
                try:
                    Path(f"{self.path}.{index}").replace(f"{self.path}.{index + 1}")
                except FileNotFoundError:
                    continue
            Path(self.path).replace(f"{self.path}.1")
            self._reopen()
        except OSError as exc:
            self._rotating = False
            write_all(self._fd, _rotation_failed(self.path, exc))

    def _after_fork(self) -> None:
        self._mutex = threading.Lock()  # another thread of the parent may have held it
        if not self._closed:
            os.close(self._fd)
            os.close(self._lock_fd)
            self._open()


def _reopen_in_child(owner: weakref.ref[RotatingFile]) -> None:
    sink = owner()
    if sink is not None:
        sink._after_fork()  # noqa: SLF001  (its own hook, registered by itself)


def _rotation_failed(path: str, exc: OSError) -> bytes:
    """The line saying the log file stops rotating (in the log format, written to the file)."""
    event = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": "error",
        "logger": "fender.logfile",
        "event": "log_rotation_failed",
        "path": path,
        "error": f"{type(exc).__name__}: {exc.strerror or exc}",
        "pid": os.getpid(),
    }
    return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)


def open_log_file(settings: Settings) -> RotatingFile:
    """The file FENDER_LOG_FILE names, opened for appending; checked here, at start-up.

    Raises:
        ConfigurationError: naming FENDER_LOG_FILE when its directory is missing or not
            writable (rotation renames files there), or the file cannot be opened.
    """
    name, path = env_name("log_file"), settings.log_file
    directory = Path(path).absolute().parent
    if not directory.is_dir():
        raise ConfigurationError(name, path, f"a file in an existing directory ({directory})")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigurationError(
            name, path, f"a file in a directory this user can write ({directory}): rotation "
            "renames files there",
        )  # fmt: skip
    try:
        return RotatingFile(
            path,
            max_bytes=max(1, int(settings.log_file_max_mb * _MIB)),
            backups=settings.log_file_backups,
        )
    except OSError as exc:
        raise ConfigurationError(
            name, path, f"a file this user can append to ({exc.strerror or exc})"
        ) from None
