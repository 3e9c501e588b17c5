"""database_health_check: DATABASE_URL read as the app's own driver reads it, and a check that
never stops the app from booting; what it cannot use is a ``warn`` that says the fix."""

from __future__ import annotations

import sys

import pytest

from fender._status import Status
from fender.db import database_health_check, engine_from_settings
from fender.db import engine as shared_engine
from fender.errors import ConfigurationError
from fender.settings import Settings, load_settings
from fender.testing import capture_logs

PASSWORD = "pg-s3cret-password"


def from_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """DATABASE_URL exported, as in production (the settings may rewrite it; fender must not)."""
    monkeypatch.setenv("DATABASE_URL", url)
    return load_settings(env_file=None)


def as_written(url: str, _monkeypatch: pytest.MonkeyPatch | None = None) -> Settings:
    """Settings holding the URL exactly as written (what any source of settings should give)."""
    return load_settings({}, env_file=None).model_copy(update={"database_url": url})


SOURCES = [pytest.param(from_environment, id="env"), pytest.param(as_written, id="as-written")]


@pytest.fixture(params=SOURCES)
def settings_for(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return lambda url: request.param(url, monkeypatch)


def without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import <module> now fails


def warning_of(settings: Settings) -> str:
    with capture_logs(load_settings({"FENDER_ENV": "development"}, env_file=None)) as logs:
        check, close = database_health_check(settings)
    result = check.func()
    close()
    assert check.name == "database"
    assert result.status is Status.WARN
    assert PASSWORD not in result.output
    [event] = logs.named("database_check_degraded")
    assert event["level"] == "warning"
    assert event["reason"] == result.output
    return str(result.output)


def server_url(postgres_url: str, scheme: str) -> str:
    # The fixture's URL names psycopg; the app's names what its own driver understands.
    rest = postgres_url.split("://", 1)[1].replace("postgres@", f"postgres:{PASSWORD}@", 1)
    return f"{scheme}://{rest}"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("scheme", "drivers"),
    [
        pytest.param("postgres", ("psycopg", "psycopg2"), id="postgres-psycopg"),
        pytest.param("postgresql", ("psycopg", "psycopg2"), id="postgresql-psycopg"),
        # Django's case: postgres://... and psycopg2, no psycopg 3 (psycopg2-binary is in the
        # dev extras).
        pytest.param("postgres", ("psycopg2", "psycopg"), id="postgres-psycopg2"),
    ],
)
def test_a_driverless_url_is_checked_with_the_driver_that_is_installed(
    postgres_url, settings_for, monkeypatch, scheme, drivers
):
    installed, absent = drivers
    without(monkeypatch, absent)
    settings = settings_for(server_url(postgres_url, scheme))
    check, close = database_health_check(settings)
    try:
        assert check.func().status is Status.PASS
    finally:
        close()
    engine = engine_from_settings(settings)
    assert engine.dialect.driver == installed
    engine.dispose()


def test_a_driverless_url_without_any_driver_warns_how_to_install_one(settings_for, monkeypatch):
    without(monkeypatch, "psycopg", "psycopg2")
    output = warning_of(settings_for(f"postgres://app:{PASSWORD}@db/app"))
    assert output.startswith("driver not installed: pip install 'fender[postgres]'")


def test_a_named_driver_that_is_missing_warns_with_its_pip_hint(settings_for, monkeypatch):
    without(monkeypatch, "psycopg2")
    output = warning_of(settings_for(f"postgresql+psycopg2://app:{PASSWORD}@db/app"))
    assert output == (
        "driver not installed: pip install psycopg2-binary "
        "(postgresql+psycopg2 needs the psycopg2 module)"
    )


def test_a_named_driver_is_used_even_when_another_is_installed(monkeypatch):
    without(monkeypatch, "psycopg2")  # psycopg (3) is installed: fender must not swap to it
    settings = as_written(f"postgres+psycopg2://app:{PASSWORD}@db/app")
    assert "pip install psycopg2-binary" in warning_of(settings)


def test_an_unknown_dialect_warns(settings_for):
    output = warning_of(settings_for(f"foo://app:{PASSWORD}@db/app"))
    assert output == "unknown dialect 'foo' in DATABASE_URL foo://app:***@db/app"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql+psycopg://app:{PASSWORD}@db:port/app", "postgresql+psycopg://app:***@db"),
        (f"postgresql:app:{PASSWORD}@db/app", "postgresql:***@db/app"),
    ],
)
def test_a_url_that_does_not_parse_warns_naming_database_url(monkeypatch, url, shown):
    output = warning_of(as_written(url))
    assert output.startswith("DATABASE_URL does not parse as a SQLAlchemy URL: ")
    assert shown in output


def test_an_async_driver_warns_rather_than_failing_every_check(monkeypatch):
    url = f"postgresql+psycopg_async://app:{PASSWORD}@db/app"
    output = warning_of(as_written(url))
    assert "async driver" in output
    assert "database_check(your AsyncEngine)" in output


def test_anything_else_that_stops_the_engine_is_a_warning_too(monkeypatch):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(PASSWORD)

    monkeypatch.setattr("fender.db._build.create_engine", broken)
    output = warning_of(as_written(f"postgresql://app:{PASSWORD}@db/app"))
    assert output == "fender's engine for DATABASE_URL failed to build (RuntimeError)"


def test_engine_from_settings_still_raises_for_callers_who_asked_for_an_engine(monkeypatch):
    without(monkeypatch, "psycopg", "psycopg2")
    settings = as_written(f"postgres://app:{PASSWORD}@db/app")
    with pytest.raises(ConfigurationError) as raised:
        engine_from_settings(settings)
    assert raised.value.field == "DATABASE_URL"
    assert raised.value.value == "postgres://app:***@db/app"  # as written
    assert "needs psycopg or psycopg2: pip install 'fender[postgres]'" in raised.value.expected


def test_a_working_check_keeps_the_pool_settings_and_its_closer_frees_it(monkeypatch, tmp_path):
    settings = as_written(f"postgresql://app:{PASSWORD}@127.0.0.1:1/app")
    check, close = database_health_check(settings)
    engine = shared_engine(settings)  # the check's pool is the app's
    assert check.name == "database"
    assert check.component_type == "datastore"
    assert engine.pool.size() == settings.db_pool_size
    close()
    sqlite = as_written(f"sqlite:///{tmp_path}/app.db")
    check, close = database_health_check(sqlite)
    assert check.func().status is Status.PASS
    close()


def test_a_driver_name_with_an_underscore_is_a_url_not_a_boot_failure():
    # urlsplit refuses "_" in a scheme; SQLAlchemy's driver names have it.
    url = "postgresql+psycopg_async://app@db/app"
    settings = load_settings({"DATABASE_URL": url}, env_file=None)
    assert settings.database_url == url
    check, close = database_health_check(settings)
    close()
    assert check.name == "database"
