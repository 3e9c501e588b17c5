"""fender doctor judges the app too (--app), and says nothing of SQLite when no database is set."""

from __future__ import annotations

import secrets
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fender._status import Finding, Status
from fender.doctor import diagnose, load_app
from fender.errors import ConfigurationError

STRONG = secrets.token_urlsafe(48)
PRODUCTION = {"FENDER_ENV": "production", "SECRET_KEY": STRONG}


def by_check(findings: tuple[Finding, ...], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for the app modules a test writes; forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield tmp_path
    finally:
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
                del sys.modules[name]


def write(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")


FLASK_TUTORIAL = """
    from flask import Flask

    def create_app():
        app = Flask("flaskr")
        app.config.from_mapping(SECRET_KEY="dev")
        return app

    app = create_app()
"""


def test_doctor_judges_the_apps_own_key(app_dir):
    write(app_dir, "flaskr_doctor", FLASK_TUTORIAL)
    report = diagnose(PRODUCTION, env_file=None, app="flaskr_doctor:app")
    (own,) = by_check(report.findings, "app_secret_key")
    assert own.status is Status.FAIL
    assert own.reason == "Flask's app.secret_key is a known placeholder value"
    assert own.field == "app.secret_key"
    (app,) = by_check(report.findings, "app")
    assert app.reason == "judged the Flask app 'flaskr'"
    assert report.exit_code() == 2
    assert "'dev'" not in repr(report)


def test_doctor_calls_an_app_factory(app_dir):
    write(app_dir, "flaskr_factory", FLASK_TUTORIAL)
    report = diagnose(PRODUCTION, env_file=None, app="flaskr_factory:create_app()")
    assert by_check(report.findings, "app_secret_key")[0].status is Status.FAIL


def test_doctor_names_a_factory_given_without_its_call(app_dir):
    write(app_dir, "flaskr_no_call", FLASK_TUTORIAL)
    report = diagnose(PRODUCTION, env_file=None, app="flaskr_no_call:create_app")
    (app,) = by_check(report.findings, "app")
    assert app.status is Status.FAIL
    assert "an app factory?" in app.reason
    assert "flaskr_no_call:create_app()" in app.fix
    assert report.exit_code() == 2


def test_doctor_passes_a_fastapi_app_without_secret_key_or_sessions(app_dir):
    write(app_dir, "api_doctor", "from fastapi import FastAPI\napp = FastAPI()\n")
    environ = {
        "FENDER_ENV": "production",
        "DATABASE_URL": "postgresql+psycopg://db/app",
        "REDIS_URL": "redis://cache:6379/0",
    }
    report = diagnose(environ, env_file=None, app="api_doctor:app")
    assert report.exit_code(strict=True) == 0, report.findings
    (env_key,) = by_check(report.findings, "secret_key")
    assert env_key.status is Status.PASS
    # Without the app, whether it needs SECRET_KEY is unknown: a warning, not a failure.
    alone = diagnose(environ, env_file=None)
    assert by_check(alone.findings, "secret_key")[0].status is Status.WARN
    assert alone.exit_code() == 0


def test_doctor_imports_an_app_that_installs_fender_without_stopping_at_its_first_rule(
    app_dir, monkeypatch
):
    # fender.install refuses to build in production with a weak key: the doctor still lists
    # every finding instead of a traceback from the import.
    monkeypatch.setenv("FENDER_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "short")
    monkeypatch.setenv("FENDER_TESTING", "0")
    write(
        app_dir,
        "installed_doctor",
        """
        from flask import Flask
        from fender.flask import Fender

        app = Flask("installed")
        app.secret_key = "changeme"
        Fender(app)
        """,
    )
    report = diagnose(None, env_file=None, app="installed_doctor:app")
    assert by_check(report.findings, "secret_key")[0].status is Status.FAIL
    assert by_check(report.findings, "app_secret_key")[0].status is Status.FAIL
    assert by_check(report.findings, "app") == [
        Finding("app", Status.PASS, "judged the Flask app 'installed'")
    ]


def test_an_app_that_cannot_be_imported_is_a_failure(app_dir):
    write(app_dir, "broken_doctor", "import os\nKEY = os.environ['NO_SUCH_VARIABLE_X']\n")
    report = diagnose(PRODUCTION, env_file=None, app="broken_doctor:app")
    (app,) = by_check(report.findings, "app")
    assert app.status is Status.FAIL
    assert app.reason == "importing broken_doctor:app raised KeyError: 'NO_SUCH_VARIABLE_X'"
    # The environment is still judged, without the app.
    assert by_check(report.findings, "secret_key")[0].status is Status.PASS


def test_a_missing_module_or_attribute_is_a_failure(app_dir):
    write(app_dir, "empty_doctor", "")
    for spec, error in [
        ("no_such_module_doctor:app", "ModuleNotFoundError"),
        ("empty_doctor:app", "AttributeError"),
    ]:
        report = diagnose(PRODUCTION, env_file=None, app=spec)
        (app,) = by_check(report.findings, "app")
        assert app.status is Status.FAIL
        assert f"importing {spec} raised {error}" in app.reason


@pytest.mark.parametrize("spec", ["shop", "shop:", ":app", "shop:app()x", "shop:1app", "shop:a..b"])
def test_a_malformed_app_spec_is_a_configuration_error(spec):
    with pytest.raises(ConfigurationError) as raised:
        diagnose(PRODUCTION, env_file=None, app=spec)
    assert raised.value.field == "--app"
    with pytest.raises(ConfigurationError):
        load_app(spec)


def test_an_app_object_is_judged_as_is():
    from flask import Flask

    app = Flask("shop")
    app.debug = True
    report = diagnose(PRODUCTION, env_file=None, app=app)
    (debug,) = by_check(report.findings, "app_debug")
    assert debug.status is Status.FAIL
    assert debug.field == "app.debug"


def test_no_database_url_means_no_database_not_sqlite():
    report = diagnose(PRODUCTION, env_file=None)
    (database,) = by_check(report.findings, "database")
    assert database.status is Status.PASS
    assert database.reason == "no database is configured (DATABASE_URL is unset)"
    assert "SQLite" not in repr(report)
    # install builds no engine without DATABASE_URL: neither does the doctor.
    assert by_check(report.findings, "database_driver") == []


def test_a_sqlite_database_url_is_still_a_warning():
    report = diagnose({**PRODUCTION, "DATABASE_URL": "sqlite:///app.db"}, env_file=None)
    (database,) = by_check(report.findings, "database")
    assert database.status is Status.WARN
    assert "SQLite" in database.reason
    assert by_check(report.findings, "database_driver")[0].status is Status.PASS
