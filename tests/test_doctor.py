"""fender doctor builds what fender.install builds: a value install refuses is a doctor failure."""

from __future__ import annotations

import sys

import pytest

from fender._status import Status
from fender.db import database_health_check, engine_from_settings
from fender.doctor import diagnose
from fender.errors import ConfigurationError
from fender.http.admin import AdminGuard
from fender.ratelimit._config import RateLimitConfig
from fender.settings import load_settings

GOOD_KEY = "kq3-VZ0x8Tb2mN7pR4sW1yH6jL9cF5gDxx"
READY = {"FENDER_ENV": "production", "SECRET_KEY": GOOD_KEY}


def install_would_build(environ):
    """What install builds from the settings, in the order it builds them."""
    settings = load_settings(environ, env_file=None)
    rate_limit = RateLimitConfig.from_settings(settings)
    AdminGuard(settings, rate_limit.resolver)
    engine_from_settings(settings).dispose()


def findings_by_check(environ):
    report = diagnose(environ, env_file=None)
    return report, {f.check: f for f in report.findings}


@pytest.mark.parametrize(
    ("name", "value", "check"),
    [
        ("FENDER_RATE_LIMIT", "lots", "rate_limit"),
        ("FENDER_RATE_LIMIT", "10/minute burst 0", "rate_limit"),
        ("FENDER_TRUSTED_PROXIES", "not-a-cidr", "rate_limit"),
        ("FENDER_RATE_LIMIT_PATHS", "/login", "rate_limit"),
        ("FENDER_RATE_LIMIT_ALLOW", "x.y", "rate_limit"),
        ("FENDER_ADMIN_CIDRS", "nope", "admin"),
    ],
)
def test_what_install_refuses_fails_the_doctor(name, value, check):
    environ = {**READY, name: value}
    with pytest.raises(ConfigurationError) as raised:
        install_would_build(environ)
    assert raised.value.field == name
    report, found = findings_by_check(environ)
    finding = found[check]
    assert finding.status is Status.FAIL
    assert finding.field == name
    assert finding.reason.startswith(f"{name}=")
    assert finding.fix.startswith(f"set {name} to ")
    assert "pw-123456" not in repr(report)
    assert report.exit_code() == 2


def test_admin_cidrs_are_judged_even_when_the_rate_limit_is_bad():
    _, found = findings_by_check({**READY, "FENDER_RATE_LIMIT": "lots", "FENDER_ADMIN_CIDRS": "x"})
    assert found["rate_limit"].status is Status.FAIL
    assert found["admin"].field == "FENDER_ADMIN_CIDRS"


def test_a_missing_database_driver_is_a_doctor_warning(monkeypatch):
    # install boots (the app's own driver may read the URL); fender's database check warns.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    environ = {**READY, "DATABASE_URL": "postgres://app:pw-123456@db/app"}
    report, found = findings_by_check(environ)
    assert found["database_driver"].status is Status.WARN
    assert "fender[postgres]" in found["database_driver"].fix
    assert "pw-123456" not in repr(report)


def test_an_unknown_database_dialect_is_a_doctor_warning():
    environ = {**READY, "DATABASE_URL": "nosuchdb://app:pw-123456@db/app"}
    _check, close = database_health_check(load_settings(environ, env_file=None))  # no raise
    close()
    report, found = findings_by_check(environ)
    assert found["database_driver"].status is Status.WARN
    assert found["database_driver"].field == "DATABASE_URL"
    assert "pw-123456" not in repr(report)


def test_good_values_pass_every_built_check():
    environ = {
        **READY,
        "FENDER_RATE_LIMIT": "10/second; 1000/hour",
        "FENDER_RATE_LIMIT_PATHS": "/login=5/minute|/search=30/minute",
        "FENDER_RATE_LIMIT_ALLOW": "10.0.0.0/8, 2001:db8::1",
        "FENDER_TRUSTED_PROXIES": "10.0.0.0/8",
        "FENDER_ADMIN_CIDRS": "10.0.0.0/8,fd00::/8",
        "DATABASE_URL": "postgres://app:pw@db/app",
    }
    install_would_build(environ)
    report, found = findings_by_check(environ)
    for check in ("rate_limit", "admin", "database_driver"):
        assert found[check].status is Status.PASS, found[check]
    assert report.status is not Status.FAIL


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_a_non_finite_float_fails_the_settings_check(value):
    report, found = findings_by_check({**READY, "FENDER_MEMORY_TIER_MAX_MB": value})
    assert found["settings"].field == "FENDER_MEMORY_TIER_MAX_MB"
    assert report.exit_code() == 2
