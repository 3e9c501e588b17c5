"""engine_from_settings: driverless PostgreSQL URLs use psycopg when it is installed; a bad
dialect or driver names DATABASE_URL with the password masked, when the engine is built."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import text

from fender.db import engine_from_settings
from fender.errors import ConfigurationError
from fender.settings import load_settings

PASSWORD = "pg-s3cret-password"


def engine_for(url: str):
    return engine_from_settings(load_settings({"DATABASE_URL": url}, env_file=None))


def test_a_sqlite_engine_connects(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path}/app.db")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_urls_build_a_psycopg_engine_without_connecting(scheme):
    engine = engine_for(f"{scheme}://app:{PASSWORD}@127.0.0.1:1/app")
    try:
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        assert engine.pool.size() == 10  # DB_POOL_SIZE
    finally:
        engine.dispose()


def raised_by(url: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as raised:
        engine_for(url)
    error = raised.value
    assert error.field == "DATABASE_URL"
    assert PASSWORD not in str(error)
    assert PASSWORD not in repr(error.value)
    return error


def test_an_unknown_dialect_names_database_url():
    error = raised_by(f"nosuchdb://app:{PASSWORD}@db/app")
    assert error.value == "nosuchdb://app:***@db/app"
    assert "dialect SQLAlchemy knows" in error.expected
    assert "'nosuchdb'" in error.expected


def test_a_driver_that_is_not_installed_names_database_url(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    error = raised_by(f"postgresql+psycopg://app:{PASSWORD}@db/app")
    assert error.value == "postgresql+psycopg://app:***@db/app"
    assert "psycopg module" in error.expected
    assert "fender[postgres]" in error.expected


def test_psycopg2_named_and_missing_says_which_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    error = raised_by(f"postgresql+psycopg2://app:{PASSWORD}@db/app")
    assert "postgresql+psycopg2 needs the psycopg2 module: pip install psycopg2-binary" in (
        error.expected
    )


def test_another_missing_driver_says_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymysql", None)
    error = raised_by(f"mysql+pymysql://app:{PASSWORD}@db/app")
    assert "mysql+pymysql needs the pymysql module: install it" in error.expected


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://app:{PASSWORD}@db:port/app",
        f"postgresql:app:{PASSWORD}@db/app",
    ],
)
def test_a_url_that_does_not_parse_names_database_url(url):
    error = raised_by(url)
    assert "SQLAlchemy URL" in error.expected
    assert error.value.startswith("***(")  # unparsed: the length only


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_driverless_postgres_url_connects_with_psycopg(postgres_url, scheme):
    url = scheme + postgres_url.removeprefix("postgresql+psycopg")
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar() == 1
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()
