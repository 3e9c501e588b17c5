from __future__ import annotations

import doctest
import importlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health import (
    Check,
    CheckOutcome,
    CheckResult,
    HealthReport,
    Kind,
    aggregate,
    sanitize,
)
from fender.health._check import contributed_status, failure_result, normalize


def noop() -> None:
    return None


def outcome(status, *, critical=True, kind=Kind.READINESS, name="c"):
    check = Check(name=name, func=noop, critical=critical, kind=kind)
    return CheckOutcome(check=check, result=CheckResult(status))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, Status.PASS, id="none"),
        pytest.param(True, Status.PASS, id="true"),
        pytest.param(False, Status.FAIL, id="false"),
        pytest.param(Status.WARN, Status.WARN, id="status"),
        pytest.param(CheckResult(Status.WARN, "slow"), Status.WARN, id="result"),
        pytest.param("pass", Status.FAIL, id="string-is-not-a-pass"),
        pytest.param(1, Status.FAIL, id="int-is-not-a-pass"),
    ],
)
def test_normalize(value, expected):
    assert normalize(value).status is expected


def test_normalize_sanitizes_result_output():
    result = normalize(CheckResult(Status.FAIL, "dial postgres://app:hunter2@db/app"))
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("status", "critical", "kind", "expected"),
    [
        (Status.PASS, True, Kind.READINESS, Status.PASS),
        (Status.WARN, True, Kind.READINESS, Status.WARN),
        (Status.FAIL, True, Kind.READINESS, Status.FAIL),
        (Status.FAIL, True, Kind.LIVENESS, Status.FAIL),
        (Status.PASS, False, Kind.READINESS, Status.PASS),
        (Status.WARN, False, Kind.READINESS, Status.WARN),
        (Status.FAIL, False, Kind.READINESS, Status.WARN),
        (Status.FAIL, True, Kind.INFO, Status.WARN),
    ],
)
def test_contributed_status(status, critical, kind, expected):
    assert contributed_status(outcome(status, critical=critical, kind=kind)) is expected


statuses = st.sampled_from(list(Status))


@given(st.lists(st.tuples(statuses, st.booleans()), max_size=8))
def test_aggregate_is_worst_critical_and_at_most_warn_otherwise(items):
    outcomes = [outcome(s, critical=c, name=f"c{i}") for i, (s, c) in enumerate(items)]
    worst_critical = Status.worst(s for s, c in items if c)
    non_critical_bad = any(s is not Status.PASS for s, c in items if not c)
    expected = Status.worst([worst_critical, Status.WARN if non_critical_bad else Status.PASS])
    assert aggregate(outcomes) is expected
    assert HealthReport.from_outcomes(outcomes, time=0.0).status is expected


def test_aggregate_of_nothing_passes():
    assert aggregate([]) is Status.PASS


def test_failure_result_names_the_exception_and_masks_secrets():
    result = failure_result(ConnectionError("redis://user:secret@host:6379 refused"))
    assert result.status is Status.FAIL
    assert result.output.startswith("ConnectionError: ")
    assert "secret" not in result.output
    assert "redis://user:***@host:6379" in result.output
    assert result.details["error"] == "ConnectionError"
    assert failure_result(RuntimeError()).output == "RuntimeError"


@pytest.mark.parametrize(
    ("text", "leak", "kept"),
    [
        ("redis://user:secret@host:6379/0", "secret", "redis://user:***@host:6379/0"),
        ("redis://:secret@host", "secret", "redis://:***@host"),
        ("postgresql://app:p@ss:w0rd@db/app", "ss:w0rd", "postgresql://app:***@db/app"),
        ("https://ghp_abcdefgh12345678@github.com/x", "ghp_", "https://***@github.com/x"),
        ("GET /a?token=abc123&page=2", "abc123", "token=***&page=2"),
        ('{"password": "hunter2"}', "hunter2", '"password": "***"'),
        ("Authorization: Bearer abcdefgh.ijkl", "abcdefgh", "Authorization: ***"),
        ("api_key=AbCdEf; x", "AbCdEf", "api_key=***;"),
        ("client_secret=xyz", "xyz", "client_secret=***"),
        ("key AKIAABCDEFGHIJKLMNOP used", "AKIAABCD", "key *** used"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJhbGci", "jwt ***"),
        ("id 0123456789abcdef0123456789abcdef01 x", "0123456789abcdef", "id *** x"),
    ],
)
def test_sanitize_masks_secrets(text, leak, kept):
    out = sanitize(text)
    assert leak not in out
    assert kept in out


@pytest.mark.parametrize(
    "text",
    [
        "connection refused to cache:6379 after 3 attempts (timeout 0.5s)",
        "GET http://auth:8080/health -> 503; token-service:9000 down",
        "bypass: true, passed=3",
    ],
)
def test_sanitize_keeps_ordinary_text(text):
    assert sanitize(text) == text


def test_sanitize_masks_header_style_secrets():
    assert sanitize("password: hunter2") == "password: ***"
    assert sanitize("{'secret':'hunter2'}") == "{'secret':'***'}"


def test_sanitize_one_line_and_capped():
    out = sanitize("line one\nline two\r\n\x1b[31mred " + "word " * 100)
    assert "\n" not in out
    assert "\x1b" not in out
    assert len(out) == 200
    assert out.endswith("\u2026")
    assert sanitize("abc", limit=2) == "a\u2026"


@given(
    user=st.text(string.ascii_lowercase, min_size=0, max_size=8),
    password=st.text(string.ascii_letters + string.digits + "!$%^*()_+-=[]{}|~.@:", max_size=16),
    scheme=st.sampled_from(["redis", "rediss", "postgresql+psycopg", "amqp", "https"]),
    host=st.text(string.ascii_lowercase, min_size=1, max_size=10),
)
def test_sanitize_never_leaks_a_url_password(user, password, scheme, host):
    secret = "Zx9" + password  # a marker that appears nowhere else in the message
    out = sanitize(f"error: cannot reach {scheme}://{user}:{secret}@{host}:1/0 (refused)")
    assert "Zx9" not in out
    assert f"{scheme}://{user}:***@{host}:1/0" in out


@given(st.text(max_size=400))
def test_sanitize_is_idempotent_and_bounded(text):
    once = sanitize(text)
    assert sanitize(once) == once
    assert len(once) <= 200


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("name", {"name": ""}),
        ("name", {"name": "has space"}),
        ("name", {"name": "a:b"}),
        ("c.func", {"func": 42}),
        ("c.kind", {"kind": "startup"}),
        ("c.critical", {"critical": "yes"}),
        ("c.timeout", {"timeout": 0}),
        ("c.timeout", {"timeout": float("inf")}),
        ("c.cache_ttl", {"cache_ttl": -1}),
        ("c.tags", {"tags": ["", "x"]}),
        ("c.measurement", {"measurement": "a:b"}),
    ],
)
def test_check_validation_names_the_field(field, kwargs):
    options = {"name": "c", "func": noop} | kwargs
    with pytest.raises(ConfigurationError) as info:
        Check(**options)
    assert info.value.field == field


def test_check_coerces_and_derives():
    async def probe() -> None:
        return None

    class AsyncCallable:
        async def __call__(self) -> None:
            return None

    check = Check(name="db", func=probe, kind="liveness", tags="storage")
    assert check.kind is Kind.LIVENESS
    assert check.tags == frozenset({"storage"})
    assert check.is_async
    assert Check(name="x", func=AsyncCallable()).is_async
    assert not Check(name="x", func=noop).is_async
    assert check.key == "db"
    assert Check(name="db", func=noop, component="pg", measurement="responseTime").key == (
        "pg:responseTime"
    )


@pytest.mark.parametrize(
    "module",
    [
        "fender.health",
        "fender.health._check",
        "fender.health._sanitize",
        "fender.health._options",
        "fender.health._registry",
        "fender.health._render",
        "fender.health._builtin_system",
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
