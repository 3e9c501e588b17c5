"""Testing mode: FENDER_TESTING, a pytest run, the app's own testing mode."""

from __future__ import annotations

import pytest

from fender._status import Status
from fender.errors import ConfigurationError
from fender.settings import (
    Settings,
    load_settings,
    production_findings,
    report_only,
    reporting_only,
    running_under_tests,
)

SHORT = {"FENDER_ENV": "production", "SECRET_KEY": "short"}
PYTEST = {"PYTEST_VERSION": "8.3.4"}


def load(**env: str) -> Settings:
    return load_settings(env, env_file=None)


def secret_key_status(settings: Settings, *, app_testing: bool = False) -> Status:
    findings = production_findings(settings, app_testing=app_testing)
    (finding,) = [f for f in findings if f.check == "secret_key"]
    return finding.status


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("0", False)])
def test_fender_testing_is_read(value, expected):
    assert load(FENDER_TESTING=value).testing is expected


def test_fender_testing_defaults_to_auto():
    assert load().testing is None


def test_running_under_tests_reads_pytest_version():
    assert running_under_tests(PYTEST) is True
    assert running_under_tests({}) is False
    assert running_under_tests({"PYTEST_VERSION": ""}) is False


def test_running_under_tests_reads_the_process_environment_by_default():
    assert running_under_tests() is True  # this is a pytest run


@pytest.mark.parametrize(
    ("env", "app_testing", "expected"),
    [
        ({}, False, False),
        ({}, True, True),
        (PYTEST, False, True),
        ({"FENDER_TESTING": "0", **PYTEST}, True, False),
        ({"FENDER_TESTING": "1"}, False, True),
    ],
)
def test_testing_mode(env, app_testing, expected):
    assert load(**env).testing_mode(app_testing=app_testing) is expected


def test_a_test_run_is_read_from_the_environment_the_settings_came_from(monkeypatch):
    # load_settings(mapping) judges that mapping: this process being a pytest run is not in it.
    assert load(**SHORT).testing_mode() is False
    monkeypatch.delenv("FENDER_TESTING", raising=False)
    assert load_settings(env_file=None).testing_mode() is True


def test_under_pytest_the_production_rules_only_warn():
    settings = load(**SHORT, **PYTEST)
    settings.require_production_ready()  # nothing raised
    assert secret_key_status(settings) is Status.WARN
    (environment,) = [f for f in production_findings(settings) if f.check == "environment"]
    assert environment.status is Status.WARN
    assert "PYTEST_VERSION" in environment.reason
    assert environment.fix == "set FENDER_TESTING=0 to enforce them"


def test_fender_testing_0_enforces_them_under_pytest():
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        load(**SHORT, **PYTEST, FENDER_TESTING="0").require_production_ready()


def test_an_app_in_testing_mode_only_warns():
    settings = load(SECRET_KEY="short")  # production by default
    assert secret_key_status(settings, app_testing=True) is Status.WARN
    assert secret_key_status(settings) is Status.FAIL
    assert settings.enforces_production(app_testing=True) is False
    assert settings.enforces_production() is True


def test_an_app_left_in_testing_mode_under_an_explicit_production_is_judged():
    # FENDER_ENV=production set on purpose is a deployment: Flask's TESTING relaxes nothing.
    settings = load(**SHORT)
    assert settings.enforces_production(app_testing=True) is True
    assert secret_key_status(settings, app_testing=True) is Status.FAIL


def test_testing_mode_leaves_production_itself_alone():
    settings = load(**SHORT, FENDER_TESTING="1")
    assert settings.is_production  # JSON logs and the rest of production stay
    assert not settings.enforces_production()


def test_report_only_reports_and_never_raises():
    settings = load(**SHORT)
    assert not reporting_only()
    with report_only():
        assert reporting_only()
        settings.require_production_ready()  # nothing raised
    assert not reporting_only()
    with pytest.raises(ConfigurationError):
        settings.require_production_ready()
