"""fender.db.engine() and async_engine(): one per process and settings, built once under
concurrency, the installed app's by default, never the parent's connections after a fork; a
URL or driver they cannot use is a ConfigurationError naming DATABASE_URL with the fix."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest
from sqlalchemy import text

import fender.db
from fender.errors import ConfigurationError
from fender.settings import Settings, load_settings
from fender.testing import capture_logs

PASSWORD = "pg-s3cret-password"


def settings_for(url: str, **env: str) -> Settings:
    return load_settings({"DATABASE_URL": url, "FENDER_ENV": "development", **env}, env_file=None)


def raised_by(call, *args) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as raised:
        call(*args)
    error = raised.value
    assert error.field == "DATABASE_URL"
    assert PASSWORD not in str(error)
    return error


def test_concurrent_first_calls_build_one_engine(tmp_path):
    settings = settings_for(f"sqlite:///{tmp_path}/app.db")
    start = threading.Barrier(16)
    engines = []

    def first_use() -> None:
        start.wait()
        engines.append(fender.db.engine(settings))

    with capture_logs(settings) as logs:
        threads = [threading.Thread(target=first_use) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len({id(engine) for engine in engines}) == 1
    assert len(logs.named("db_engine_created")) == 1
    assert engines[0] is fender.db.engine(settings_for(f"sqlite:///{tmp_path}/app.db"))
    fender.db.dispose(settings)


def test_other_pool_settings_are_another_engine(tmp_path):
    url = f"sqlite:///{tmp_path}/app.db"
    small = fender.db.engine(settings_for(url, DB_POOL_SIZE="2"))
    default = fender.db.engine(settings_for(url))
    assert small is not default
    assert (small.pool.size(), default.pool.size()) == (2, 10)


def test_without_settings_the_engine_is_the_installed_apps(tmp_path):
    from flask import Flask

    from fender.flask import Fender

    url = f"sqlite:///{tmp_path}/installed.db"
    Fender(Flask(__name__), env="development", database_url=url)
    engine = fender.db.engine()
    assert engine.url.database == f"{tmp_path}/installed.db"
    assert engine is fender.db.engine(settings_for(url))
    other = tmp_path / "later.db"
    Fender(Flask(__name__), env="development", database_url=f"sqlite:///{other}")
    assert fender.db.engine().url.database == str(other)  # the last app installed


def test_the_pool_settings_reach_the_engine(tmp_path):
    settings = settings_for(
        f"sqlite:///{tmp_path}/app.db",
        DB_POOL_SIZE="3",
        DB_MAX_OVERFLOW="4",
        DB_POOL_TIMEOUT="7",
        DB_POOL_RECYCLE="60",
    )
    pool = fender.db.engine(settings).pool
    assert (pool.size(), pool._max_overflow, pool.timeout(), pool._recycle) == (3, 4, 7, 60)
    assert pool._pre_ping


@pytest.mark.postgres
def test_a_forked_child_opens_its_own_connections(postgres_url):
    settings = settings_for(postgres_url)
    engine = fender.db.engine(settings)
    backend_pid = text("select pg_backend_pid()")
    with engine.connect() as connection:
        parent = connection.execute(backend_pid).scalar()
    assert engine.pool.checkedin() == 1  # the connection a child must not share
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover  (the child reports through the pipe)
        code = 1
        try:
            with fender.db.engine(settings).connect() as connection:
                os.write(write, str(connection.execute(backend_pid).scalar()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert int(answer) != parent
    with engine.connect() as connection:  # the parent's connection is intact, still pooled
        assert connection.execute(backend_pid).scalar() == parent
    fender.db.dispose(settings)


def test_the_async_engine_runs_sqlite_on_aiosqlite(tmp_path):
    settings = settings_for(f"sqlite:///{tmp_path}/app.db")

    async def query() -> int:
        engine = fender.db.async_engine(settings)
        assert engine is fender.db.async_engine(settings)
        assert engine.dialect.driver == "aiosqlite"
        async with engine.connect() as connection:
            answer = (await connection.execute(text("select 41 + 1"))).scalar_one()
        assert engine.sync_engine.pool.checkedin() == 1
        await fender.db.adispose(settings)
        assert engine.sync_engine.pool.checkedin() == 0
        return int(answer)

    assert asyncio.run(query()) == 42


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_the_async_engine_runs_postgres_on_psycopg(postgres_url, scheme):
    settings = settings_for(scheme + postgres_url.removeprefix("postgresql+psycopg"))

    async def query() -> str:
        engine = fender.db.async_engine(settings)
        try:
            async with engine.connect() as connection:
                return str((await connection.execute(text("select 'pong'"))).scalar_one())
        finally:
            await fender.db.adispose(settings)

    assert asyncio.run(query()) == "pong"
    dialect = fender.db.async_engine(settings).dialect
    assert (dialect.driver, dialect.is_async) == ("psycopg", True)


def test_the_async_engine_needs_its_driver(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "aiosqlite", None)  # import aiosqlite now fails
    error = raised_by(fender.db.async_engine, settings_for(f"sqlite:///{tmp_path}/app.db"))
    assert "sqlite needs aiosqlite for asyncio: pip install 'fender[asyncio]'" in error.expected


def test_the_async_engine_needs_psycopg_for_postgres(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    error = raised_by(fender.db.async_engine, settings_for(f"postgresql://app:{PASSWORD}@db/app"))
    assert "needs psycopg for asyncio: pip install 'fender[postgres]'" in error.expected


def test_the_async_engine_needs_greenlet(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "greenlet", None)
    error = raised_by(
        fender.db.async_engine_from_settings, settings_for(f"sqlite:///{tmp_path}/app.db")
    )
    assert "greenlet: pip install 'fender[asyncio]'" in error.expected


def test_psycopg2_has_no_asyncio():
    url = f"postgresql+psycopg2://app:{PASSWORD}@db/app"
    error = raised_by(fender.db.async_engine, settings_for(url))
    assert error.value == "postgresql+psycopg2://app:***@db/app"
    assert "no asyncio support: use postgresql+psycopg" in error.expected


def test_the_sync_engine_refuses_an_async_driver():
    url = f"postgresql+psycopg_async://app:{PASSWORD}@db/app"
    error = raised_by(fender.db.engine, settings_for(url))
    assert "use fender.db.async_engine()" in error.expected


def test_an_unknown_dialect_names_database_url_for_both_flavours():
    settings = settings_for(f"nosuchdb://app:{PASSWORD}@db/app")
    for call in (fender.db.engine, fender.db.async_engine):
        assert "dialect SQLAlchemy knows" in raised_by(call, settings).expected


def test_no_password_in_the_engine_log(tmp_path, monkeypatch):
    settings = settings_for(f"postgresql://app:{PASSWORD}@127.0.0.1:1/app")
    with capture_logs(settings) as logs:
        engine = fender.db.engine_from_settings(settings)
    engine.dispose()
    [created] = logs.named("db_engine_created")
    assert created["url"] == "postgresql+psycopg://app:***@127.0.0.1:1/app"
    assert created["pool_name"] == "127.0.0.1:1/app"
    assert PASSWORD not in "\n".join(logs.lines)
