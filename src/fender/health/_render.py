"""Render a :class:`~fender.health.HealthReport` as response bytes; pure, no I/O.

Three bodies:

* fender's JSON (``application/json``), every check by name;
* the IETF health check response format (``application/health+json``, draft-inadarei-api-
  health-check): ``checks`` keyed ``component:measurement``, each an array of objects;
* a summary, the aggregate status alone, safe to expose publicly.

:func:`render` picks the format from an ``Accept`` header and maps the status to an HTTP code.
All text that may carry an error message goes through :func:`~fender.health.sanitize`
here, whatever the registry already did, so no URL password or token reaches a response; every
value a check returned goes through :func:`~fender.health._sanitize.sanitize_value`, so whatever
it holds (an integer past 64 bits, NaN, a set, bytes, non-string keys) the body encodes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from fender._negotiate import preferred
from fender._status import Status
from fender.errors import ConfigurationError
from fender.health._check import CheckOutcome, HealthReport
from fender.health._sanitize import UNIT_LIMIT, sanitize, sanitize_details, sanitize_value

__all__ = [
    "DEFAULT_HTTP_STATUS",
    "Format",
    "RenderConfig",
    "Rendered",
    "choose_format",
    "health_json_document",
    "http_status",
    "json_document",
    "render_health_json",
    "render_json",
    "render_response",
    "render_summary",
]

DEFAULT_HTTP_STATUS: Mapping[Status, int] = MappingProxyType(
    {Status.PASS: 200, Status.WARN: 200, Status.FAIL: 503}
)
"""Degraded (``warn``) still serves: 200. Only ``fail`` takes the instance out (503)."""


class Format(enum.StrEnum):
    """The body formats, as their media types."""

    JSON = "application/json"
    HEALTH_JSON = "application/health+json"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RenderConfig:
    """How reports are rendered.

    Args:
        http_status: HTTP code for each aggregate status (default pass 200, warn 200,
            fail 503); must cover all three.
        service_id: health+json ``serviceId`` (omitted when empty).
        version: health+json ``version`` (omitted when empty).
        release_id: health+json ``releaseId`` (omitted when empty).
        description: health+json ``description`` (omitted when empty).
        details: include each check's extra ``details`` in fender's JSON body.
    """

    http_status: Mapping[Status, int] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_HTTP_STATUS)
    )
    service_id: str = ""
    version: str = ""
    release_id: str = ""
    description: str = ""
    details: bool = True

    def __post_init__(self) -> None:
        """Validate ``http_status`` (keys may be status strings) and freeze it."""
        try:
            codes = {Status(key): value for key, value in self.http_status.items()}
        except (AttributeError, ValueError):
            raise ConfigurationError(
                "http_status", self.http_status, "a mapping of pass/warn/fail to HTTP codes"
            ) from None
        for status in Status:
            code = codes.get(status)
            if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:  # noqa: PLR2004  (the HTTP status code range)
                raise ConfigurationError(
                    f"http_status[{status}]", code, "an HTTP status code 100-599"
                )
        object.__setattr__(self, "http_status", MappingProxyType(codes))


DEFAULT_CONFIG = RenderConfig()


class Rendered(NamedTuple):
    """A rendered response: HTTP status code, ``Content-Type`` and body."""

    status_code: int
    content_type: str
    body: bytes


def http_status(status: Status, config: RenderConfig = DEFAULT_CONFIG) -> int:
    """The HTTP status code for an aggregate ``status``."""
    return config.http_status[status]


def json_document(report: HealthReport, config: RenderConfig = DEFAULT_CONFIG) -> dict[str, Any]:
    """The fender JSON body as data: ``{"status": ..., "checks": {name: {...}}}``."""
    checks: dict[str, Any] = {}
    for name, outcome in report.checks.items():
        result = outcome.result
        entry: dict[str, Any] = {
            "status": str(result.status),
            "duration_ms": round(outcome.duration * 1000, 3),
            "observed_value": _observed(result.observed_value),
            "observed_unit": sanitize(result.observed_unit, UNIT_LIMIT) or None,
            "time": _iso(outcome.time),
            "output": sanitize(result.output) or None,
        }
        if config.details and result.details:
            entry["details"] = sanitize_details(result.details)
        checks[name] = entry
    return {"status": str(report.status), "checks": checks}


def health_json_document(
    report: HealthReport, config: RenderConfig = DEFAULT_CONFIG
) -> dict[str, Any]:
    """The ``application/health+json`` body as data (draft-inadarei-api-health-check).

    Optional members are omitted when empty; ``output`` appears only for warn and fail, as
    the draft asks.
    """
    service = {
        "version": config.version,
        "releaseId": config.release_id,
        "serviceId": config.service_id,
        "description": config.description,
    }
    document: dict[str, Any] = {"status": str(report.status)}
    document.update((key, value) for key, value in service.items() if value)
    checks: dict[str, list[dict[str, Any]]] = {}
    for outcome in report.checks.values():
        checks.setdefault(outcome.check.key, []).append(_health_json_check(outcome))
    if checks:
        document["checks"] = checks
    return document


def _health_json_check(outcome: CheckOutcome) -> dict[str, Any]:
    result, check = outcome.result, outcome.check
    item: dict[str, Any] = {"componentId": check.name}
    if check.component_type:
        item["componentType"] = check.component_type
    observed = _observed(result.observed_value)
    if observed is not None:
        item["observedValue"] = observed
    unit = sanitize(result.observed_unit, UNIT_LIMIT)
    if unit:
        item["observedUnit"] = unit
    item["status"] = str(result.status)
    if outcome.time is not None:
        item["time"] = _iso(outcome.time)
    output = sanitize(result.output)
    if output and result.status is not Status.PASS:
        item["output"] = output
    return item


def render_json(report: HealthReport, config: RenderConfig = DEFAULT_CONFIG) -> bytes:
    """The fender JSON body as bytes."""
    return orjson.dumps(json_document(report, config))


def render_health_json(report: HealthReport, config: RenderConfig = DEFAULT_CONFIG) -> bytes:
    """The ``application/health+json`` body as bytes."""
    return orjson.dumps(health_json_document(report, config))


def render_summary(report: HealthReport) -> bytes:
    """``{"status": "pass"}``: the aggregate only, no names, versions or messages.

    Valid as both fender JSON and health+json, and safe on a public endpoint.
    """
    return orjson.dumps({"status": str(report.status)})


def choose_format(accept: str | None) -> Format:
    """Pick the body format for an ``Accept`` header; fender's JSON unless health+json wins.

    For each format the most specific matching media range gives its quality (RFC 9110);
    health+json is chosen when its quality is higher, or equal and it was named explicitly
    (so ``*/*`` and ``application/*`` give plain JSON). Health endpoints never answer 406.
    """
    return preferred(accept, (Format.JSON, Format.HEALTH_JSON))


def render_response(
    report: HealthReport,
    *,
    accept: str | None = None,
    summary: bool = False,
    config: RenderConfig = DEFAULT_CONFIG,
) -> Rendered:
    """Render ``report`` for a request: status code, content type and body.

    Args:
        report: from :meth:`~fender.health.HealthRegistry.run` or ``snapshot``.
        accept: the request's ``Accept`` header, if any.
        summary: render the aggregate status only (for public endpoints).
        config: HTTP codes and health+json service fields.

    Example:
        >>> from fender.health import HealthReport
        >>> report = HealthReport.from_outcomes([], time=0.0)
        >>> render_response(report, accept="application/health+json", summary=True)
        Rendered(status_code=200, content_type='application/health+json', body=b'{"status":"pass"}')
    """
    fmt = choose_format(accept)
    if summary:
        body = render_summary(report)
    elif fmt is Format.HEALTH_JSON:
        body = render_health_json(report, config)
    else:
        body = render_json(report, config)
    return Rendered(http_status(report.status, config), fmt.value, body)


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    moment = dt.datetime.fromtimestamp(wall, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _observed(value: object) -> object:
    # A string observed value may be a message in disguise: sanitize it like output. Anything
    # else a check put there must still encode (a 2**70 counter, NaN, a set): never a 500.
    return sanitize_value(value)
