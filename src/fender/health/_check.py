"""Health checks as data: the check, what it returns, the recorded outcome, the aggregate.

Everything here is pure (no I/O, no event loop, no clock reads): the registry runs the
callables and feeds the results through these functions, and the renderer turns a
:class:`HealthReport` into bytes. What a check says is sanitized (:mod:`._sanitize`) when its
result is recorded, and again by the renderer.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TypeAlias

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health._sanitize import UNIT_LIMIT, sanitize, sanitize_details, sanitize_value

__all__ = [
    "DEFAULT_TIMEOUT",
    "Check",
    "CheckFunc",
    "CheckOutcome",
    "CheckResult",
    "HealthReport",
    "Kind",
    "ObservedValue",
    "aggregate",
    "contributed_status",
    "deadline_result",
    "failure_result",
    "normalize",
    "timeout_result",
]

CheckFunc: TypeAlias = Callable[[], object] | Callable[[], Awaitable[object]]
"""A check callable: no arguments; returns None, a bool, a Status or a CheckResult; may be async."""

ObservedValue: TypeAlias = int | float | str | bool | None

DEFAULT_TIMEOUT = 2.0
"""Seconds a check may run before it counts as failed."""
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


class Kind(enum.StrEnum):
    """What a check is for; the endpoints select checks by kind.

    ``liveness`` checks say whether the process should be restarted, ``readiness`` checks
    whether it should receive traffic, ``info`` checks only report (they never make the
    aggregate worse than ``warn``).
    """

    LIVENESS = "liveness"
    READINESS = "readiness"
    INFO = "info"


@dataclasses.dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check returns when a bare pass/fail is not enough.

    Example:
        >>> CheckResult(Status.WARN, "replica lag 4s", observed_value=4.0, observed_unit="s")
        CheckResult(status=<Status.WARN: 'warn'>, output='replica lag 4s', ...)

    Args:
        status: pass, warn or fail.
        output: a short human-readable message (sanitized and capped before display).
        observed_value: the measured value, e.g. a latency or a free-space percentage.
        observed_unit: the unit of ``observed_value`` (``ms``, ``percent``, ``MiB``...).
        details: extra JSON-compatible fields shown with the check (sanitized too).
    """

    status: Status = Status.PASS
    output: str = ""
    _: dataclasses.KW_ONLY
    observed_value: ObservedValue = None
    observed_unit: str = ""
    details: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        """Coerce a status string and freeze ``details``."""
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def __repr__(self) -> str:
        """Status and output only."""
        # Short on purpose: details can be long, and doctests should not depend on them.
        return f"CheckResult(status={self.status!r}, output={self.output!r}, ...)"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    """One registered health check: a callable and how to run and judge it.

    Args:
        name: unique within a registry; letters, digits, ``_``, ``.``, ``-`` (max 64).
        func: the callable, sync or async, taking no arguments (see :data:`CheckFunc`).
        kind: liveness, readiness (default) or info.
        critical: when False a failure only degrades the aggregate to ``warn``.
        timeout: seconds before the call counts as failed (default 2).
        tags: free-form group names used to select checks.
        cache_ttl: seconds a result is reused instead of calling again (0: never cached).
        component: the ``component`` in the health+json ``component:measurement`` key;
            defaults to ``name``.
        component_type: health+json ``componentType`` (``component``, ``datastore``, ``system``).
        measurement: the ``measurement`` in that key (``responseTime``, ``utilization``...).
    """

    name: str
    func: CheckFunc
    kind: Kind = Kind.READINESS
    critical: bool = True
    timeout: float = DEFAULT_TIMEOUT
    tags: frozenset[str] = frozenset()
    cache_ttl: float = 0.0
    component: str = ""
    component_type: str = "component"
    measurement: str = ""

    def __post_init__(self) -> None:
        """Validate every field, raising ConfigurationError naming it."""
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ConfigurationError(
                "name", self.name, "1-64 letters, digits, '_', '.' or '-', starting alphanumeric"
            )
        if not callable(self.func):
            raise ConfigurationError(f"{self.name}.func", self.func, "a callable")
        try:
            object.__setattr__(self, "kind", Kind(self.kind))
        except ValueError:
            expected = " / ".join(Kind)
            raise ConfigurationError(f"{self.name}.kind", self.kind, expected) from None
        if not isinstance(self.critical, bool):
            raise ConfigurationError(f"{self.name}.critical", self.critical, "True or False")
        _require_seconds(f"{self.name}.timeout", self.timeout, allow_zero=False)
        _require_seconds(f"{self.name}.cache_ttl", self.cache_ttl, allow_zero=True)
        tags = (self.tags,) if isinstance(self.tags, str) else tuple(self.tags)
        if not all(isinstance(tag, str) and tag for tag in tags):
            raise ConfigurationError(f"{self.name}.tags", self.tags, "non-empty strings")
        object.__setattr__(self, "tags", frozenset(tags))
        for field in ("component", "component_type", "measurement"):
            value = getattr(self, field)
            if not isinstance(value, str) or ":" in value:
                raise ConfigurationError(f"{self.name}.{field}", value, "a string without ':'")

    @property
    def is_async(self) -> bool:
        """True when calling ``func`` returns an awaitable to run on the event loop."""
        call = getattr(self.func, "__call__", None)  # noqa: B004  (async __call__ on instances)
        return inspect.iscoroutinefunction(self.func) or inspect.iscoroutinefunction(call)

    @property
    def key(self) -> str:
        """The health+json ``checks`` key: ``component:measurement`` or just ``component``."""
        component = self.component or self.name
        return f"{component}:{self.measurement}" if self.measurement else component


def _require_seconds(field: str, value: object, *, allow_zero: bool) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        raise ConfigurationError(field, value, "seconds >= 0" if allow_zero else "seconds > 0")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CheckOutcome:
    """One recorded run of a check: the check, its result and when it happened.

    Args:
        check: the check that ran.
        result: what it returned, normalized (failures and timeouts included).
        duration: seconds the call took, by the registry's injected clock.
        at: the injected clock's reading when it finished (cache and snapshot ages).
        time: wall-clock epoch seconds when it finished, for display only; None if never run.
    """

    check: Check
    result: CheckResult
    duration: float = 0.0
    at: float = 0.0
    time: float | None = None

    @property
    def name(self) -> str:
        """The check's name."""
        return self.check.name

    @property
    def status(self) -> Status:
        """The check's own status (before the critical/non-critical rule)."""
        return self.result.status


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class HealthReport:
    """The outcome of one run (or snapshot) of a selection of checks.

    Args:
        status: the aggregate (see :func:`aggregate`).
        checks: outcomes by check name, in registration order.
        time: wall-clock epoch seconds of the run, for display only.
        duration: seconds the run took.
    """

    status: Status
    checks: Mapping[str, CheckOutcome]
    time: float
    duration: float = 0.0

    @classmethod
    def from_outcomes(
        cls, outcomes: Iterable[CheckOutcome], *, time: float, duration: float = 0.0
    ) -> HealthReport:
        """Aggregate ``outcomes`` into a report."""
        checks = {outcome.name: outcome for outcome in outcomes}
        return cls(
            status=aggregate(checks.values()),
            checks=MappingProxyType(checks),
            time=time,
            duration=duration,
        )


def contributed_status(outcome: CheckOutcome) -> Status:
    """The status one outcome contributes to the aggregate.

    A critical liveness or readiness check contributes its own status; a non-critical or
    ``info`` check contributes at most ``warn`` (degraded but serving).
    """
    check = outcome.check
    if outcome.status is Status.FAIL and (not check.critical or check.kind is Kind.INFO):
        return Status.WARN
    return outcome.status


def aggregate(outcomes: Iterable[CheckOutcome]) -> Status:
    """The worst contributed status; ``pass`` when there is no check."""
    return Status.worst(contributed_status(outcome) for outcome in outcomes)


def normalize(value: object) -> CheckResult:
    """Turn what a check returned into a :class:`CheckResult`.

    None and True pass, False fails, a Status is taken as is; anything else fails with a
    message naming the type (a check that returns a string by mistake must not pass).
    """
    if value is None or value is True:
        return _PASS
    if value is False:
        return CheckResult(Status.FAIL, "check returned False")
    if isinstance(value, Status):
        return CheckResult(value)
    if isinstance(value, CheckResult):
        return dataclasses.replace(
            value,
            output=sanitize(value.output),
            observed_value=sanitize_value(value.observed_value),
            observed_unit=sanitize(value.observed_unit, UNIT_LIMIT),
            details=sanitize_details(value.details),
        )
    kind = type(value).__name__
    return CheckResult(
        Status.FAIL, f"check returned {kind}; expected None, bool, Status or CheckResult"
    )


_PASS = CheckResult(Status.PASS)


def failure_result(exc: BaseException) -> CheckResult:
    """A failing result for a check that raised ``exc``: class name and sanitized message."""
    kind = type(exc).__name__
    message = sanitize(exc)
    return CheckResult(
        Status.FAIL,
        sanitize(f"{kind}: {message}" if message else kind),
        details={"error": kind},
    )


def timeout_result(timeout: float) -> CheckResult:
    """A failing result for a check that did not finish within its ``timeout`` seconds."""
    return CheckResult(
        Status.FAIL, f"timed out after {timeout:g}s", details={"error": "TimeoutError"}
    )


def deadline_result(deadline: float) -> CheckResult:
    """A failing result for a check still running when the run's ``deadline`` expired."""
    return CheckResult(
        Status.FAIL,
        f"not finished within the {deadline:g}s deadline of the run",
        details={"error": "DeadlineExceeded"},
    )
