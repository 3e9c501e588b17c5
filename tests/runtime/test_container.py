"""Container limits from cgroup trees: each layout is a folder of files, as the kernel shows it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fender.runtime._container import (
    GarbageError,
    cgroup_dirs,
    parse_cpu_max,
    parse_memory_value,
    parse_mountinfo,
    parse_proc_cgroup,
    read_limits,
    read_usage,
)

MIB = 2**20
GIB = 2**30
MEMINFO = "MemTotal:       25165824 kB\nMemFree:        1000 kB\n"  # 24 GiB

V1_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:29 {root} /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 {root} /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
40 31 0:37 {root} /sys/fs/cgroup/systemd ro,nosuid - cgroup cgroup rw,xattr,name=systemd
"""
V2_MOUNT = "30 23 0:26 {root} /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
HYBRID_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def tree(root: Path, files: dict[str, str]) -> Path:
    for path, text in {"proc/meminfo": MEMINFO, **files}.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def test_v1_docker_layout_mount_root_is_the_container(tmp_path):
    # Docker with cgroup v1: the mount shows the container's own cgroup as its root.
    container = "/docker/0123abcd"
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": f"4:memory:{container}\n3:cpu,cpuacct:{container}\n"
            f"1:name=systemd:{container}\n",
            "proc/self/mountinfo": V1_MOUNTS.format(root=container),
            "sys/fs/cgroup/memory/memory.limit_in_bytes": str(512 * MIB),
            "sys/fs/cgroup/memory/memory.usage_in_bytes": str(100 * MIB),
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "150000",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
        },
    )
    limits = read_limits(root, affinity=64)
    assert limits.memory_bytes == 512 * MIB
    assert limits.memory_source == "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    assert limits.cpus == 1.5
    assert limits.cpu_count == 1  # the quota rounded down, never above it
    assert limits.version == "v1"
    assert read_usage(limits, root) == 100 * MIB
    assert limits.problems == ()


def test_v2_with_cgroup_namespace(tmp_path):
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "proc/self/mountinfo": V2_MOUNT.format(root="/"),
            "sys/fs/cgroup/memory.max": str(GIB),
            "sys/fs/cgroup/memory.current": str(300 * MIB),
            "sys/fs/cgroup/cpu.max": "200000 100000\n",
        },
    )
    limits = read_limits(root, affinity=64)
    assert (limits.memory_bytes, limits.cpus, limits.cpu_count) == (GIB, 2.0, 2)
    assert limits.version == "v2"
    assert read_usage(limits, root) == 300 * MIB


def test_v2_reads_the_process_cgroup_not_the_root(tmp_path):
    # Without a cgroup namespace the mount root is "/": the process's own path is under it.
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/system.slice/app.service\n",
            "proc/self/mountinfo": V2_MOUNT.format(root="/"),
            "sys/fs/cgroup/memory.max": "max",  # the root: no limit
            "sys/fs/cgroup/system.slice/memory.max": "max",
            "sys/fs/cgroup/system.slice/app.service/memory.max": str(256 * MIB),
            "sys/fs/cgroup/system.slice/app.service/cpu.max": "max 100000",
        },
    )
    limits = read_limits(root, affinity=8)
    assert limits.memory_bytes == 256 * MIB
    assert limits.memory_source.endswith("app.service/memory.max")
    assert limits.cpus is None
    assert limits.cpu_count == 8  # no quota: the CPUs it may run on


def test_nested_pod_limit_binds_a_container_without_one(tmp_path):
    pod = "/kubepods.slice/kubepods-pod1.slice"
    container = f"{pod}/cri-containerd-abc.scope"
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": f"0::{container}\n",
            "proc/self/mountinfo": V2_MOUNT.format(root="/"),
            f"sys/fs/cgroup{container}/memory.max": "max",
            f"sys/fs/cgroup{container}/cpu.max": "max 100000",
            f"sys/fs/cgroup{pod}/memory.max": str(512 * MIB),
            f"sys/fs/cgroup{pod}/cpu.max": "50000 100000",
            "sys/fs/cgroup/kubepods.slice/memory.max": str(20 * GIB),
        },
    )
    limits = read_limits(root, affinity=64)
    assert limits.memory_bytes == 512 * MIB
    assert limits.memory_source == f"/sys/fs/cgroup{pod}/memory.max"
    assert limits.cpus == 0.5
    assert limits.cpu_count == 1  # at least one


def test_hybrid_host_reads_memory_from_v1(tmp_path):
    # This machine's layout: v1 controllers plus an empty v2 "unified" hierarchy.
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "4:memory:/process_api/abc\n1:cpu:/\n0::/\n",
            "proc/self/mountinfo": HYBRID_MOUNTS,
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712",
            "sys/fs/cgroup/memory/process_api/memory.limit_in_bytes": str(768 * MIB),
            "sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "9223372036854771712",
            "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
            "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
            "sys/fs/cgroup/unified/memory.max": str(GIB),  # not attached here: ignored
        },
    )
    limits = read_limits(root, affinity=2)
    assert limits.version == "hybrid"
    assert limits.memory_bytes == 768 * MIB
    assert (limits.cpus, limits.cpu_count) == (None, 2)


def test_unlimited_everywhere_falls_back_to_host_ram_and_affinity(tmp_path):
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "proc/self/mountinfo": V2_MOUNT.format(root="/"),
            "sys/fs/cgroup/memory.max": "max\n",
            "sys/fs/cgroup/cpu.max": "max 100000\n",
        },
    )
    limits = read_limits(root, affinity=4)
    assert limits.memory_bytes == 24 * GIB
    assert limits.memory_source == "/proc/meminfo"
    assert limits.cpu_count == 4


def test_host_ram_caps_a_limit_above_it(tmp_path):
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "proc/self/mountinfo": V2_MOUNT.format(root="/"),
            "sys/fs/cgroup/memory.max": str(64 * GIB),
        },
    )
    assert read_limits(root, affinity=1).memory_bytes == 24 * GIB


def test_cpuset_affinity_caps_the_quota(tmp_path):
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "proc/self/mountinfo": V2_MOUNT.format(root="/"),
            "sys/fs/cgroup/cpu.max": "800000 100000",
        },
    )
    assert read_limits(root, affinity=2).cpu_count == 2


def test_memory_limit_mb_overrides_the_files(tmp_path):
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "proc/self/mountinfo": V2_MOUNT.format(root="/"),
            "sys/fs/cgroup/memory.max": str(GIB),
        },
    )
    limits = read_limits(root, memory_limit_mb=512, affinity=1)
    assert (limits.memory_bytes, limits.memory_source) == (512 * MIB, "MEMORY_LIMIT_MB")


@pytest.mark.parametrize(
    ("memory", "cpu"),
    [
        pytest.param("lots", "fast", id="words"),
        pytest.param("12.5", "100000", id="fraction-and-one-field"),
        pytest.param("\x00\x01", "0 100000", id="binary-and-zero-quota"),
        pytest.param("", "100000 0", id="empty-and-zero-period"),
    ],
)
def test_garbage_files_are_named_not_fatal(tmp_path, memory, cpu):
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "proc/self/mountinfo": V2_MOUNT.format(root="/"),
            "sys/fs/cgroup/memory.max": memory,
            "sys/fs/cgroup/cpu.max": cpu,
        },
    )
    limits = read_limits(root, affinity=2)
    assert limits.memory_source == "/proc/meminfo"  # the garbage is no limit
    assert any("memory.max" in problem for problem in limits.problems)
    if cpu != "100000":  # "100000" alone is a valid quota with the default period
        assert any("cpu.max" in problem for problem in limits.problems)


def test_no_cgroup_files_at_all(tmp_path):
    limits = read_limits(tree(tmp_path, {}), affinity=3)
    assert (limits.version, limits.memory_source, limits.cpu_count) == ("none", "/proc/meminfo", 3)
    assert read_usage(limits, tmp_path) is None


def test_this_machine():
    limits = read_limits()
    assert limits.cpu_count >= 1
    assert limits.affinity == len(os.sched_getaffinity(0))
    assert limits.memory_bytes is not None
    assert limits.host_memory_bytes is not None
    assert limits.memory_bytes <= limits.host_memory_bytes
    assert limits.version in {"v1", "v2", "hybrid", "none"}
    if limits.usage_file is not None:
        usage = read_usage(limits)
        assert usage is None or usage > 0


def test_parsers():
    assert parse_memory_value("9223372036854771712") is None
    assert parse_memory_value("-1") is None
    with pytest.raises(GarbageError):
        parse_memory_value("1e9")
    assert parse_cpu_max("max") is None
    assert parse_cpu_max("250000 100000") == 2.5
    assert parse_proc_cgroup("3:cpu,cpuacct:/a\n0::/b\ngarbage\n") == {
        "cpu": "/a",
        "cpuacct": "/a",
        "": "/b",
    }
    line = r"40 31 0:37 / /sys/fs/cgroup/with\040space rw - cgroup cgroup rw,memory"
    mounts = parse_mountinfo(line)
    assert mounts[0].mount_point == "/sys/fs/cgroup/with space"
    assert "memory" in mounts[0].controllers


def test_a_mount_that_does_not_show_the_process_cgroup_is_skipped():
    # The v1 mount shows /other only; the process lives in /mine: nothing to read there.
    mountinfo = "35 31 0:32 /other /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert cgroup_dirs("4:memory:/mine\n", mountinfo, "memory") is None
