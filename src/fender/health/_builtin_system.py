"""Ready-made checks of this machine's resources: free disk space and this process's memory.

Both are sync (run on the registry's thread pool) and non-critical by default. Like every
built-in factory, each returns a :class:`~fender.health.Check`; register it, overriding any
option:

    >>> from fender.health import HealthRegistry
    >>> registry = HealthRegistry()
    >>> registry.add(disk_check("/"), critical=True).name
    'disk'

psutil is imported when :func:`memory_check` is called, not when this module is.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health._check import Check, CheckResult

__all__ = ["disk_check", "memory_check"]

_GIB = 1024**3
_MIB = 1024**2


def _require_ratio(field: str, value: float, upper: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= upper:
        raise ConfigurationError(field, value, f"a number from 0 to {upper:g}")


def disk_check(
    path: str = "/",
    *,
    name: str = "disk",
    warn_below_percent: float = 10.0,
    fail_below_percent: float = 5.0,
) -> Check:
    """Free space on the filesystem holding ``path``.

    Passes above ``warn_below_percent`` free, warns below it, fails below
    ``fail_below_percent``. Observed value: used space in percent (``disk:utilization``).
    Non-critical by default: a full disk degrades most web services rather than stopping them.
    """
    _require_ratio("fail_below_percent", fail_below_percent, 100)
    _require_ratio("warn_below_percent", warn_below_percent, 100)
    if fail_below_percent > warn_below_percent:
        raise ConfigurationError(
            "fail_below_percent",
            fail_below_percent,
            f"<= warn_below_percent ({warn_below_percent})",
        )

    def disk() -> CheckResult:
        usage = shutil.disk_usage(path)
        free_percent = 100.0 * usage.free / usage.total if usage.total else 0.0
        if free_percent < fail_below_percent:
            status = Status.FAIL
        elif free_percent < warn_below_percent:
            status = Status.WARN
        else:
            status = Status.PASS
        output = (
            f"{free_percent:.1f}% free on {path} "
            f"({usage.free / _GIB:.1f} GiB of {usage.total / _GIB:.1f} GiB)"
        )
        return CheckResult(
            status,
            "" if status is Status.PASS else output,
            observed_value=round(100.0 - free_percent, 2),
            observed_unit="percent",
            details={"path": path, "free_bytes": usage.free, "total_bytes": usage.total},
        )

    return Check(
        name=name,
        func=disk,
        critical=False,
        tags=frozenset({"system"}),
        component="disk",
        component_type="system",
        measurement="utilization",
    )


def memory_check(
    *,
    limit_bytes: int | Callable[[], int | None] | None = None,
    name: str = "memory",
    warn_ratio: float = 0.85,
    fail_ratio: float = 0.95,
) -> Check:
    """This process's resident memory (RSS, via psutil) against a limit.

    Args:
        limit_bytes: the limit, or a callable returning it at each run (e.g. the container's
            cgroup limit, or ``MEMORY_LIMIT_MB`` per worker); None or a callable returning None
            means the machine's total memory.
        name: the check name.
        warn_ratio: RSS / limit from which the check warns.
        fail_ratio: RSS / limit from which it fails.

    Observed value: RSS in percent of the limit (``memory:utilization``). Non-critical by
    default: the runtime recycles a worker over its limit; health reports the pressure.
    """
    _require_ratio("warn_ratio", warn_ratio, 1)
    _require_ratio("fail_ratio", fail_ratio, 1)
    if warn_ratio > fail_ratio:
        raise ConfigurationError("warn_ratio", warn_ratio, f"<= fail_ratio ({fail_ratio})")
    if (
        limit_bytes is not None
        and not callable(limit_bytes)
        and (not isinstance(limit_bytes, int) or isinstance(limit_bytes, bool) or limit_bytes <= 0)
    ):
        raise ConfigurationError("limit_bytes", limit_bytes, "a positive number of bytes")
    import psutil

    def memory() -> CheckResult:
        # Process() per call, not per factory: under a preloading server the factory runs in
        # the master, and each forked worker must measure itself.
        rss = psutil.Process().memory_info().rss
        limit = limit_bytes() if callable(limit_bytes) else limit_bytes
        source = "limit"
        if not limit or limit <= 0:
            limit, source = psutil.virtual_memory().total, "machine"
        ratio = rss / limit
        if ratio >= fail_ratio:
            status = Status.FAIL
        elif ratio >= warn_ratio:
            status = Status.WARN
        else:
            status = Status.PASS
        output = f"RSS {rss / _MIB:.0f} MiB is {ratio:.0%} of the {source} {limit / _MIB:.0f} MiB"
        return CheckResult(
            status,
            "" if status is Status.PASS else output,
            observed_value=round(100.0 * ratio, 2),
            observed_unit="percent",
            details={"rss_bytes": rss, "limit_bytes": limit, "limit_source": source},
        )

    return Check(
        name=name,
        func=memory,
        critical=False,
        tags=frozenset({"system"}),
        component="memory",
        component_type="system",
        measurement="utilization",
    )
