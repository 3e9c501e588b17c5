"""Health checks as data: the check, what it returns, the recorded outcome, the aggregate.

Everything here is pure (no I/O, no event loop, no clock reads): the registry
(:mod:`fender.health.registry`) runs the callables and feeds the results through these
functions, and the renderer (:mod:`fender.health.render`) turns a :class:`HealthReport` into
bytes. Output text that may reach an HTTP response passes :func:`sanitize` here and again in the
renderer, so a secret in an exception message never leaves the process.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeAlias

from fender._status import Status
from fender.errors import ConfigurationError
from fender.settings import redact_url

__all__ = [
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
    "sanitize",
    "sanitize_details",
    "sanitize_value",
    "timeout_result",
]

CheckFunc: TypeAlias = Callable[[], object] | Callable[[], Awaitable[object]]
"""A check callable: no arguments; returns None, a bool, a Status or a CheckResult; may be async."""

ObservedValue: TypeAlias = int | float | str | bool | None

DEFAULT_TIMEOUT = 2.0
OUTPUT_LIMIT = 200
KEY_LIMIT = 64
"""Characters kept of a ``details`` key."""
UNIT_LIMIT = 64
"""Characters kept of an ``observed_unit``."""
DETAILS_DEPTH = 3
"""Levels of nested containers kept in ``details`` and ``observed_value``."""
# The integers orjson writes: int64 and uint64.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
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


# --- sanitization -------------------------------------------------------------------------------
# Patterns run in order; each replaces the secret part with "***" and keeps enough context to
# debug (scheme, user name, key name). Over-masking a harmless value is accepted; leaking a
# secret is not.
_SENSITIVE_NAME = (
    r"(?:[A-Za-z0-9_\-]*[_\-])?(?:pass(?:word|wd|phrase)?|pwd?|secret|token|api[_\-]?key|access[_\-]?key"
    r"|auth(?:orization)?|credentials?|private[_\-]?key|session[_\-]?id|signature|sig)"
)
_SANITIZERS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # A lone surrogate (from a bad decode) is not UTF-8: no JSON encoder or header can carry it.
    (re.compile(r"[\ud800-\udfff]+"), "\ufffd"),
    # Control characters would let a message forge log lines or break a header.
    (re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+"), " "),
    # scheme://user:password@host -> scheme://user:***@host; scheme://token@host -> ***@:
    # each URL-looking word goes through the one redaction of configured URLs, which takes
    # the userinfo up to the last '@' (a password may hold '/', '?', '#' or '@').
    (
        re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://\S+"),
        lambda m: redact_url(m[0]),
    ),
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 ***"),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), "***"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "***"),
    (
        # "key=v", "key: v", '"key":"v"'; not "auth:8080", which is a host and port.
        re.compile(
            rf"(?i)(?<![A-Za-z0-9])({_SENSITIVE_NAME})"
            r"([\"']?\s*=\s*[\"']?|[\"']?:\s+[\"']?|[\"']:[\"']?)[^\s\"'&;,]+"
        ),
        r"\1\2***",
    ),
    # Long mixed letter-and-digit runs look like generated tokens or keys.
    (
        re.compile(
            r"(?<![A-Za-z0-9_\-])(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[A-Za-z])"
            r"[A-Za-z0-9_\-]{32,}(?![A-Za-z0-9_\-])"
        ),
        "***",
    ),
    (re.compile(r"\s{2,}"), " "),
)


def sanitize(text: object, limit: int = OUTPUT_LIMIT) -> str:
    """Return ``text`` on one line, secrets masked, capped at ``limit`` characters.

    Masks URL passwords (and single-part userinfo, often a token), ``Bearer``/``Basic``
    credentials, ``key=value`` pairs whose key names a secret, JWTs, AWS access key ids and
    long random-looking tokens. Idempotent, so it can run at every layer.

    >>> sanitize("connect redis://app:hunter2@cache:6379/0 failed")
    'connect redis://app:***@cache:6379/0 failed'
    >>> sanitize("GET /x?api_key=abc123&page=2")
    'GET /x?api_key=***&page=2'
    """
    return _sanitize(_text(text), limit)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:  # any __str__ may raise; the message must still render
        # Also an int past sys.get_int_max_str_digits(): str() refuses to convert it.
        if isinstance(value, int):
            return f"<int of {value.bit_length()} bits>"
        return f"<{type(value).__name__}>"


@functools.lru_cache(maxsize=2048)
def _sanitize(text: str, limit: int) -> str:
    # Cached: the same outputs are rendered on every /health/quick (about 15 regex passes
    # each); results are pure functions of the text.
    out = text
    for pattern, replacement in _SANITIZERS:
        out = pattern.sub(replacement, out)
    out = out.strip()
    if len(out) > limit:
        out = out[: max(limit - 1, 0)].rstrip() + "\u2026"
    return out


def sanitize_details(details: Mapping[str, object]) -> dict[str, Any]:
    """Return ``details`` as JSON-compatible data with every string sanitized.

    Keys become sanitized strings; values pass :func:`sanitize_value`.
    """
    return {sanitize(key, KEY_LIMIT): sanitize_value(value) for key, value in details.items()}


def sanitize_value(value: object, depth: int = DETAILS_DEPTH) -> Any:
    """Return ``value`` as data any JSON encoder (orjson included) accepts, strings sanitized.

    A check may return anything; rendering it must never fail. So:

    * ``None``, ``bool``, ``int`` within 64 bits and finite ``float`` stay numbers (subclasses
      such as ``IntEnum`` or NumPy's ``float64`` become the plain type);
    * an integer orjson cannot write (``>= 2**64`` or ``< -2**63``) becomes its decimal
      string (capped like any text; ``<int of N bits>`` past Python's digit limit);
    * NaN and the infinities become ``None`` (JSON has no such numbers; ``null`` keeps the
      field numeric for a dashboard);
    * mappings become dicts with sanitized string keys, and lists, tuples and sets become
      lists, down to ``depth`` levels; deeper containers become their (sanitized) text;
    * bytes are decoded as UTF-8 (invalid bytes replaced); anything else becomes its text,
      through :func:`sanitize`.

    >>> sanitize_value({"n": 2**70, 1: float("nan"), "s": {b"ok"}})
    {'n': '1180591620717411303424', '1': None, 's': ['ok']}
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value) if _INT_MIN <= value <= _INT_MAX else sanitize(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if depth > 0 and isinstance(value, Mapping):
        return {
            sanitize(key, KEY_LIMIT): sanitize_value(item, depth - 1) for key, item in value.items()
        }
    if depth > 0 and isinstance(value, list | tuple | set | frozenset):
        return [sanitize_value(item, depth - 1) for item in value]
    return sanitize(value)
