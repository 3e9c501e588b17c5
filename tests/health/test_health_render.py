from __future__ import annotations

import orjson
import pytest

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health import (
    Check,
    CheckOutcome,
    CheckResult,
    Format,
    HealthReport,
    Kind,
    RenderConfig,
    choose_format,
    render_response,
    render_summary,
)
from fender.health._render import health_json_document, http_status, json_document

WALL = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z


def noop() -> None:
    return None


def make_report(*items):
    outcomes = [
        CheckOutcome(check=check, result=result, duration=0.0123, at=5.0, time=WALL)
        for check, result in items
    ]
    return HealthReport.from_outcomes(outcomes, time=WALL)


@pytest.fixture
def report():
    return make_report(
        (
            Check(
                name="redis",
                func=noop,
                component_type="datastore",
                measurement="responseTime",
            ),
            CheckResult(Status.PASS, observed_value=1.5, observed_unit="ms"),
        ),
        (
            Check(
                name="pg-primary",
                func=noop,
                component="postgres",
                component_type="datastore",
                measurement="responseTime",
            ),
            CheckResult(Status.FAIL, "OperationalError: postgresql://app:hunter2@db refused"),
        ),
        (
            Check(
                name="pg-replica",
                func=noop,
                component="postgres",
                component_type="datastore",
                measurement="responseTime",
                critical=False,
            ),
            CheckResult(Status.PASS, observed_value=3, observed_unit="ms"),
        ),
        (
            Check(name="build", func=noop, kind=Kind.INFO),
            CheckResult(Status.PASS, "ok", details={"token": "token=abcdef", "n": 1}),
        ),
    )


def test_default_json_body(report):
    body = orjson.loads(render_response(report).body)
    assert body["status"] == "fail"
    assert list(body["checks"]) == ["redis", "pg-primary", "pg-replica", "build"]
    assert body["checks"]["redis"] == {
        "status": "pass",
        "duration_ms": 12.3,
        "observed_value": 1.5,
        "observed_unit": "ms",
        "time": "2023-11-14T22:13:20.250Z",
        "output": None,
    }
    failing = body["checks"]["pg-primary"]
    assert failing["status"] == "fail"
    assert failing["output"] == "OperationalError: postgresql://app:***@db refused"
    assert body["checks"]["build"]["details"] == {"token": "token=***", "n": 1}
    no_details = json_document(report, RenderConfig(details=False))
    assert "details" not in no_details["checks"]["build"]


def test_health_json_body(report):
    config = RenderConfig(service_id="kv", version="1", release_id="1.2.3", description="store")
    rendered = render_response(report, accept="application/health+json", config=config)
    assert rendered.content_type == "application/health+json"
    assert rendered.status_code == 503
    body = orjson.loads(rendered.body)
    assert body == {
        "status": "fail",
        "version": "1",
        "releaseId": "1.2.3",
        "serviceId": "kv",
        "description": "store",
        "checks": {
            "redis:responseTime": [
                {
                    "componentId": "redis",
                    "componentType": "datastore",
                    "observedValue": 1.5,
                    "observedUnit": "ms",
                    "status": "pass",
                    "time": "2023-11-14T22:13:20.250Z",
                }
            ],
            "postgres:responseTime": [
                {
                    "componentId": "pg-primary",
                    "componentType": "datastore",
                    "status": "fail",
                    "time": "2023-11-14T22:13:20.250Z",
                    "output": "OperationalError: postgresql://app:***@db refused",
                },
                {
                    "componentId": "pg-replica",
                    "componentType": "datastore",
                    "observedValue": 3,
                    "observedUnit": "ms",
                    "status": "pass",
                    "time": "2023-11-14T22:13:20.250Z",
                },
            ],
            "build": [
                {
                    "componentId": "build",
                    "componentType": "component",
                    "status": "pass",
                    "time": "2023-11-14T22:13:20.250Z",
                }
            ],
        },
    }


def test_health_json_minimal_document():
    empty = HealthReport.from_outcomes([], time=WALL)
    assert health_json_document(empty) == {"status": "pass"}


def test_never_checked_has_no_time():
    report = HealthReport.from_outcomes(
        [CheckOutcome(check=Check(name="x", func=noop), result=CheckResult(Status.FAIL, "n/a"))],
        time=WALL,
    )
    assert json_document(report)["checks"]["x"]["time"] is None
    assert "time" not in health_json_document(report)["checks"]["x"][0]


def test_summary_shows_the_status_only(report):
    assert render_summary(report) == b'{"status":"fail"}'
    rendered = render_response(report, summary=True, accept="application/health+json")
    assert rendered == (503, "application/health+json", b'{"status":"fail"}')


def test_output_is_sanitized_at_render_even_if_built_by_hand():
    report = make_report(
        (
            Check(name="x", func=noop),
            CheckResult(Status.WARN, "x\nredis://u:hunter2@h", observed_value="pw=hunter2"),
        )
    )
    for accept in (None, "application/health+json"):
        assert b"hunter2" not in render_response(report, accept=accept).body


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, Format.JSON),
        ("", Format.JSON),
        ("*/*", Format.JSON),
        ("application/*", Format.JSON),
        ("application/json", Format.JSON),
        ("application/health+json", Format.HEALTH_JSON),
        ("Application/Health+JSON", Format.HEALTH_JSON),
        ("application/health+json, */*;q=0.8", Format.HEALTH_JSON),
        ("application/json, application/health+json", Format.HEALTH_JSON),
        ("application/json, application/health+json;q=0.9", Format.JSON),
        ("application/health+json;q=0.5, application/json;q=0.4", Format.HEALTH_JSON),
        ("application/health+json;q=0", Format.JSON),
        ("application/health+json;q=oops", Format.JSON),
        ("*/*, application/health+json", Format.HEALTH_JSON),
        ("text/html", Format.JSON),
    ],
)
def test_choose_format(accept, expected):
    assert choose_format(accept) is expected


def test_http_status_mapping():
    assert [http_status(s) for s in Status] == [200, 200, 503]
    strict = RenderConfig(http_status={"pass": 200, "warn": 207, "fail": 500})
    assert [http_status(s, strict) for s in Status] == [200, 207, 500]
    degraded = make_report((Check(name="x", func=noop), CheckResult(Status.WARN)))
    assert render_response(degraded, config=strict).status_code == 207
    assert render_response(degraded).status_code == 200


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({"pass": 200, "warn": 200}, "http_status[fail]"),
        ({"pass": 200, "warn": 200, "fail": 600}, "http_status[fail]"),
        ({"pass": True, "warn": 200, "fail": 503}, "http_status[pass]"),
        ({"ok": 200}, "http_status"),
        ([200], "http_status"),
    ],
)
def test_render_config_validation(mapping, field):
    with pytest.raises(ConfigurationError) as info:
        RenderConfig(http_status=mapping)
    assert info.value.field == field
