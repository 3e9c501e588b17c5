"""Container limits: memory and CPU from cgroup v1, v2 and hybrid hosts.

Parsing is pure (text in, numbers out); reading is one thin function over a root directory, so
a test's cgroup tree is a folder of files and this machine's is ``/``. What is read:

* ``/proc/self/cgroup``: the process's own cgroup per controller (``4:memory:/a/b`` in v1,
  ``0::/a/b`` in v2), never the root's;
* ``/proc/self/mountinfo``: where each hierarchy is mounted and which part of it the mount
  shows (inside a container the mount's root is the container's own cgroup);
* the limit files of that cgroup and of every ancestor up to the mount, keeping the smallest
  (a pod's limit above a container without one still binds): v2 ``memory.max``,
  ``cpu.max``; v1 ``memory.limit_in_bytes``, ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``;
* a hybrid host (v1 controllers and a v2 ``unified`` mount) is read per controller: the
  hierarchy that has it attached wins;
* the host's RAM (``/proc/meminfo``) caps the memory limit, and the CPUs the process may run on
  (its affinity) cap the CPU quota. "Unlimited" (``max``, ``-1``, v1's page-rounded
  ``2**63 - 1``) is no limit.

A file that is missing is no limit; a file with garbage in it is no limit too, and is named in
``problems`` so that ``fender workers`` and ``fender doctor`` can say what they could not read.

Example:
    >>> parse_memory_value("max"), parse_memory_value("536870912")
    (None, 536870912)
    >>> parse_cpu_max("150000 100000")
    1.5
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "ContainerLimits",
    "Mount",
    "cgroup_dirs",
    "parse_cpu_max",
    "parse_memory_value",
    "parse_mountinfo",
    "parse_proc_cgroup",
    "read_limits",
    "read_usage",
]

# v1 reports "no limit" as the largest page-aligned 63-bit value; anything this large is none.
_UNLIMITED_BYTES: Final = 1 << 62
_MEMORY: Final = "memory"
_CPU: Final = "cpu"

Version = Literal["v1", "v2", "hybrid", "none"]


class GarbageError(ValueError):
    """A limit file whose content is not what the kernel writes there."""


def parse_memory_value(text: str) -> int | None:
    """Bytes from ``memory.max`` / ``memory.limit_in_bytes``; None for unlimited."""
    value = text.strip()
    if value in {"max", "-1"}:
        return None
    if not value.isascii() or not value.isdigit():
        raise GarbageError(value[:40])
    number = int(value)
    return None if number >= _UNLIMITED_BYTES or number == 0 else number


def parse_cpu_max(text: str) -> float | None:
    """CPUs from v2 ``cpu.max`` (``"quota period"``, ``"max period"``); None for unlimited."""
    parts = text.split()
    if len(parts) not in (1, 2):
        raise GarbageError(text.strip()[:40])
    quota = parts[0]
    period = parts[1] if len(parts) == 2 else "100000"  # noqa: PLR2004  (quota and period)
    if quota == "max":
        return None
    return _quota(quota, period)


def _quota(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        raise GarbageError(f"{quota} {period}"[:40]) from None
    if q < 0:  # v1's -1: no quota
        return None
    if q == 0 or p <= 0:
        raise GarbageError(f"{quota} {period}")
    return q / p


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controller: path}; the v2 entry (``0::/p``) under ``""``.

    A v1 line may name several controllers (``3:cpu,cpuacct:/p``); each gets the path.
    """
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:  # noqa: PLR2004  (id, controllers, path)
            continue
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller.removeprefix("name=")] = path
    return paths


@dataclass(frozen=True, slots=True)
class Mount:
    """One cgroup mount: where, which part of the hierarchy, v1 controllers or v2."""

    root: str
    mount_point: str
    version: Literal["v1", "v2"]
    controllers: frozenset[str]


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup mounts of ``/proc/self/mountinfo`` (other file systems skipped)."""
    mounts = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        fields = before.split()
        tail = after.split()
        if not sep or len(fields) < 5 or len(tail) < 3:  # noqa: PLR2004  (mountinfo(5))
            continue
        fstype, super_options = tail[0], tail[2]
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup2":
            mounts.append(Mount(root, mount_point, "v2", frozenset()))
        elif fstype == "cgroup":
            options = frozenset(o.removeprefix("name=") for o in super_options.split(","))
            mounts.append(Mount(root, mount_point, "v1", options))
    return mounts


def _unescape(path: str) -> str:
    """Undo mountinfo's octal escapes of space, tab, newline and backslash (``040``)."""
    if "\\" not in path:
        return path
    return path.encode().decode("unicode_escape")


def _joined(mount: Mount, path: str) -> str | None:
    """The directory of cgroup ``path`` under ``mount``; None when the mount does not show it."""
    root = mount.root.rstrip("/")
    if root and path != root and not path.startswith(root + "/"):
        return None
    relative = path[len(root) :] if root else path
    return (
        mount.mount_point.rstrip("/") + relative.rstrip("/")
        if relative != "/"
        else mount.mount_point
    )


def cgroup_dirs(
    proc_cgroup: str, mountinfo: str, controller: str
) -> tuple[Literal["v1", "v2"], list[str]] | None:
    """The process's cgroup directory for ``controller`` and its ancestors up to the mount.

    Innermost first. v1 wins on a hybrid host where the controller is attached to a v1
    hierarchy; None when neither hierarchy has it.
    """
    paths = parse_proc_cgroup(proc_cgroup)
    mounts = parse_mountinfo(mountinfo)
    for mount in mounts:
        if mount.version == "v1" and controller in mount.controllers and controller in paths:
            found = _ancestors(mount, paths[controller])
            if found:
                return "v1", found
    if "" in paths:
        for mount in mounts:
            if mount.version == "v2":
                found = _ancestors(mount, paths[""])
                if found:
                    return "v2", found
    return None


def _ancestors(mount: Mount, path: str) -> list[str]:
    directory = _joined(mount, path)
    if directory is None:
        return []
    top = mount.mount_point.rstrip("/") or "/"
    result = [directory]
    while directory.rstrip("/") != top and "/" in directory.strip("/"):
        directory = directory.rsplit("/", 1)[0] or "/"
        result.append(directory)
        if directory.rstrip("/") == top:
            break
    return result


@dataclass(frozen=True, slots=True)
class ContainerLimits:
    """What bounds this process: memory in bytes and CPUs, each with where it came from."""

    memory_bytes: int | None
    memory_source: str
    cpus: float | None
    cpu_source: str
    affinity: int
    host_memory_bytes: int | None
    version: Version
    usage_file: str | None = None
    problems: tuple[str, ...] = field(default=())

    @property
    def cpu_count(self) -> int:
        """Whole CPUs to plan for: the quota rounded down, at most the affinity, at least 1."""
        quota = self.affinity if self.cpus is None else min(self.cpus, self.affinity)
        return max(1, math.floor(quota))

    @property
    def memory_mb(self) -> float | None:
        """The memory limit in MiB, or None when nothing bounds it."""
        return None if self.memory_bytes is None else self.memory_bytes / 2**20


def _read(root: Path, path: str) -> str | None:
    try:
        return (root / path.lstrip("/")).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _smallest(
    root: Path,
    dirs: list[str],
    names: tuple[str, ...],
    parse: Callable[..., float | None],
    problems: list[str],
) -> tuple[float | None, str]:
    best: float | None = None
    source = ""
    for directory in dirs:
        texts = [_read(root, f"{directory}/{name}") for name in names]
        if any(text is None for text in texts):
            continue
        try:
            value = parse(*texts)
        except GarbageError as bad:
            problems.append(f"{directory}/{names[0]}: not a limit ({bad})")
            continue
        if value is not None and (best is None or value < best):
            best, source = value, f"{directory}/{names[0]}"
    return best, source


def read_limits(
    root: str | Path = "/",
    *,
    memory_limit_mb: float | None = None,
    affinity: int | None = None,
) -> ContainerLimits:
    """Read the limits under ``root`` (``/`` here; a fixture folder in tests).

    ``memory_limit_mb`` (MEMORY_LIMIT_MB) overrides whatever the files say. ``affinity``: the
    CPUs this process may use (default: ``os.sched_getaffinity``).
    """
    base = Path(root)
    problems: list[str] = []
    proc_cgroup = _read(base, "proc/self/cgroup") or ""
    mountinfo = _read(base, "proc/self/mountinfo") or ""
    host = _host_memory(_read(base, "proc/meminfo"))
    if affinity is None:
        affinity = _affinity()
    memory = cgroup_dirs(proc_cgroup, mountinfo, _MEMORY)
    cpu = cgroup_dirs(proc_cgroup, mountinfo, _CPU)
    memory_bytes: float | None = None
    memory_source = "none"
    usage_file = None
    if memory is not None:
        memory_version, dirs = memory
        name = "memory.max" if memory_version == "v2" else "memory.limit_in_bytes"
        memory_bytes, memory_source = _smallest(base, dirs, (name,), parse_memory_value, problems)
        usage = "memory.current" if memory_version == "v2" else "memory.usage_in_bytes"
        usage_file = f"{dirs[0]}/{usage}"
    if host is not None and (memory_bytes is None or host < memory_bytes):
        memory_bytes, memory_source = host, "/proc/meminfo"
    if memory_limit_mb is not None:
        memory_bytes, memory_source = memory_limit_mb * 2**20, "MEMORY_LIMIT_MB"
    cpus: float | None = None
    cpu_source = "affinity"
    if cpu is not None:
        cpu_version, dirs = cpu
        if cpu_version == "v2":
            cpus, cpu_source = _smallest(base, dirs, ("cpu.max",), parse_cpu_max, problems)
        else:
            cpus, cpu_source = _smallest(
                base, dirs, ("cpu.cfs_quota_us", "cpu.cfs_period_us"), _quota, problems
            )
        cpu_source = cpu_source or "affinity"
    layouts = {mount.version for mount in parse_mountinfo(mountinfo)}
    version: Version = "hybrid" if len(layouts) > 1 else layouts.pop() if layouts else "none"
    return ContainerLimits(
        memory_bytes=None if memory_bytes is None else int(memory_bytes),
        memory_source=memory_source,
        cpus=cpus,
        cpu_source=cpu_source,
        affinity=affinity,
        host_memory_bytes=host,
        version=version,
        usage_file=usage_file,
        problems=tuple(problems),
    )


def _affinity() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the cpuset a container is pinned to
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _host_memory(meminfo: str | None) -> int | None:
    for line in (meminfo or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():  # noqa: PLR2004  (name, kB)
                return int(parts[1]) * 1024
    return None


def read_usage(limits: ContainerLimits, root: str | Path = "/") -> int | None:
    """The cgroup's current memory usage in bytes (read at scrape time), None if unknown."""
    if limits.usage_file is None:
        return None
    text = _read(Path(root), limits.usage_file)
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())
