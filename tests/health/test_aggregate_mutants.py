"""Health checks as data, value by value: validation errors, results, reports (mutation tests)."""

from __future__ import annotations

import pytest

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health._check import (
    Check,
    CheckOutcome,
    CheckResult,
    HealthReport,
    deadline_result,
    normalize,
    timeout_result,
)
from fender.health._sanitize import sanitize_details, sanitize_value


def noop() -> None:
    return None


NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting alphanumeric"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "a b"}, ("name", "a b", NAME_RULE)),
        ({"func": 42}, ("c.func", 42, "a callable")),
        ({"kind": "startup"}, ("c.kind", "startup", "liveness / readiness / info")),
        ({"critical": "yes"}, ("c.critical", "yes", "True or False")),
        ({"timeout": 0}, ("c.timeout", 0, "seconds > 0")),
        ({"timeout": True}, ("c.timeout", True, "seconds > 0")),
        ({"cache_ttl": -1}, ("c.cache_ttl", -1, "seconds >= 0")),
        ({"tags": ["", "x"]}, ("c.tags", ["", "x"], "non-empty strings")),
        ({"component": "a:b"}, ("c.component", "a:b", "a string without ':'")),
        ({"component_type": 3}, ("c.component_type", 3, "a string without ':'")),
        ({"measurement": "a:b"}, ("c.measurement", "a:b", "a string without ':'")),
    ],
)
def test_check_errors_name_the_field_the_value_and_the_rule(kwargs, expected):
    with pytest.raises(ConfigurationError) as info:
        Check(**({"name": "c", "func": noop} | kwargs))
    assert (info.value.field, info.value.value, info.value.expected) == expected


def test_zero_seconds_is_a_valid_cache_ttl_not_a_timeout():
    assert Check(name="c", func=noop, cache_ttl=0).cache_ttl == 0
    assert Check(name="c", func=noop, timeout=0.001).timeout == 0.001


@pytest.mark.parametrize(
    ("value", "output"),
    [
        (False, "check returned False"),
        ("pass", "check returned str; expected None, bool, Status or CheckResult"),
        (1, "check returned int; expected None, bool, Status or CheckResult"),
    ],
)
def test_normalize_explains_a_failure(value, output):
    assert normalize(value) == CheckResult(Status.FAIL, output)


def test_normalize_keeps_true_a_pass():
    assert normalize(True) == CheckResult(Status.PASS)


def test_normalize_sanitizes_every_field_of_a_result():
    raw = CheckResult(
        Status.WARN,
        "lag\nhigh",
        observed_value=float("nan"),
        observed_unit="m" * 100,
        details={"k": "token=abcdefgh12345678"},
    )
    result = normalize(raw)
    assert result.status is Status.WARN
    assert result.output == "lag high"
    assert result.observed_value is None
    assert result.observed_unit == "m" * 63 + "\u2026"
    assert dict(result.details) == {"k": "token=***"}
    kept = normalize(CheckResult(Status.PASS, "ok", observed_value=4.5, observed_unit="ms"))
    assert (kept.observed_value, kept.observed_unit) == (4.5, "ms")


def test_timeout_and_deadline_results():
    assert timeout_result(2.5) == CheckResult(
        Status.FAIL, "timed out after 2.5s", details={"error": "TimeoutError"}
    )
    assert deadline_result(10.0) == CheckResult(
        Status.FAIL,
        "not finished within the 10s deadline of the run",
        details={"error": "DeadlineExceeded"},
    )


def test_details_keys_are_capped_shorter_than_text():
    long_key = "k" * 100
    capped = "k" * 63 + "\u2026"
    assert sanitize_details({long_key: 1}) == {capped: 1}
    assert sanitize_value({long_key: {long_key: 2}}) == {capped: {capped: 2}}


def test_containers_are_kept_three_levels_deep():
    assert sanitize_value({"a": {"b": {"c": {"d": 1}}}}) == {"a": {"b": {"c": "{'d': 1}"}}}
    assert sanitize_value([[[[1]]]]) == [[["[1]"]]]
    assert sanitize_value({"a": [{"b": 1}]}) == {"a": [{"b": 1}]}
    assert sanitize_value([{"a": [1]}]) == [{"a": [1]}]
    assert sanitize_value({"a": [1]}, depth=1) == {"a": "[1]"}
    assert sanitize_value([{"a": 1}], depth=1) == ["{'a': 1}"]
    assert sanitize_value([1], depth=0) == "[1]"
    assert sanitize_value({"a": 1}, depth=0) == "{'a': 1}"


def test_a_report_keeps_its_time_and_duration():
    outcome = CheckOutcome(check=Check(name="c", func=noop), result=CheckResult(Status.FAIL))
    report = HealthReport.from_outcomes([outcome], time=1234.5, duration=0.25)
    assert report.status is Status.FAIL
    assert (report.time, report.duration) == (1234.5, 0.25)
    assert dict(report.checks) == {"c": outcome}
    assert HealthReport.from_outcomes([], time=1.0).duration == 0.0
