"""Pool metrics (db_client_connection_*) and slow queries, on SQLite files and real PostgreSQL.

Each test has a database of its own (a file, or a fresh PostgreSQL database), so its
pool_name is its own and the process-wide registry's values are this test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest
import sqlalchemy
from prometheus_client import REGISTRY
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from fender.db import async_engine_from_settings, engine_from_settings
from fender.db._url import pool_name
from fender.observability._logging import RequestContext, bind_request, reset_request
from fender.settings import Settings, load_settings
from fender.testing import capture_logs

from servers import wait_for

PASSWORD = "pg-s3cret-password"
SECRET = "card-4111-1111-1111-1111"


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/app.db"
    return request.getfixturevalue("postgres_url")


def settings_for(url: str, **env: str) -> Settings:
    return load_settings({"DATABASE_URL": url, "FENDER_ENV": "development", **env}, env_file=None)


def sample(name: str, url: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"pool_name": pool_name(make_url(url)), **labels})


def counts(url: str) -> dict[str, float | None]:
    return {
        state: sample("db_client_connection_count", url, state=state) for state in ("idle", "used")
    }


def with_sleep(engine: sqlalchemy.Engine) -> None:
    """SQLite has no sleep: ``sleep(seconds)`` as a user function on every new connection."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def add_sleep(dbapi_connection, _record):
        dbapi_connection.create_function("sleep", 1, time.sleep)


def sleep_sql(engine: sqlalchemy.Engine, seconds: float) -> str:
    function = "sleep" if engine.dialect.name == "sqlite" else "pg_sleep"
    return f"select {function}({seconds}), :secret as card"


def test_pool_names_carry_no_user_or_password():
    assert pool_name(make_url(f"postgresql://app:{PASSWORD}@db.internal:5432/orders")) == (
        "db.internal:5432/orders"
    )
    assert pool_name(make_url("postgresql://app@db/orders")) == "db/orders"
    assert pool_name(make_url("sqlite:///data/app.db")) == "data/app.db"
    assert pool_name(make_url("sqlite://")) == ":memory:"


def test_counts_by_state_after_checkouts_and_returns(database_url):
    engine = engine_from_settings(settings_for(database_url, DB_POOL_SIZE="2", DB_MAX_OVERFLOW="1"))
    try:
        assert sample("db_client_connection_max", database_url) == 3
        assert sample("db_client_connection_idle_max", database_url) == 2
        with contextlib.ExitStack() as stack:
            held = [stack.enter_context(engine.connect()) for _ in range(3)]
            for connection in held:
                assert connection.execute(text("select 1")).scalar() == 1
            assert counts(database_url) == {"idle": 0, "used": 3}
            held[0].close()
            assert counts(database_url) == {"idle": 1, "used": 2}
        # The overflow connection is closed on return; the pool keeps DB_POOL_SIZE idle.
        assert counts(database_url) == {"idle": 2, "used": 0}
        assert sample("db_client_connection_wait_time_seconds_count", database_url) == 3
        assert sample("db_client_connection_use_time_seconds_count", database_url) == 3
        assert sample("db_client_connection_pending_requests", database_url) == 0
        engine.dispose()
        assert counts(database_url) == {"idle": 0, "used": 0}
    finally:
        engine.dispose()


def test_an_exhausted_pool_counts_the_timeout(database_url):
    settings = settings_for(
        database_url, DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="1"
    )
    engine = engine_from_settings(settings)
    raised: list[BaseException] = []

    def wait_for_a_connection() -> None:
        try:
            engine.connect()
        except sqlalchemy.exc.TimeoutError as exc:
            raised.append(exc)

    waiter = threading.Thread(target=wait_for_a_connection)
    try:
        with capture_logs(settings) as logs, engine.connect():
            waiter.start()
            wait_for(
                lambda: sample("db_client_connection_pending_requests", database_url) == 1,
                10,
                "a caller waiting for the pool",
            )
            waiter.join(30)  # ends with the pool's own timeout, the event under test
            assert not waiter.is_alive()
            assert counts(database_url) == {"idle": 0, "used": 1}
    finally:
        engine.dispose()
    assert len(raised) == 1
    assert sample("db_client_connection_timeouts_total", database_url) == 1
    assert sample("db_client_connection_pending_requests", database_url) == 0
    [timeout] = logs.named("db_pool_timeout")
    assert timeout["level"] == "warning"
    assert timeout["pool_name"] == pool_name(make_url(database_url))
    assert timeout["waited_s"] >= 1
    assert "DB_POOL_SIZE" in timeout["fix"]


def test_a_slow_query_is_logged_without_its_parameters_and_counted(database_url):
    settings = settings_for(database_url, FENDER_SLOW_QUERY_MS="100")
    engine = engine_from_settings(settings)
    with_sleep(engine)
    token = bind_request(RequestContext("req-slow-1"))
    try:
        with capture_logs(settings) as logs, engine.connect() as connection:
            connection.execute(text("select 1"))  # fast: no event
            connection.execute(text(sleep_sql(engine, 0.2)), {"secret": SECRET})
    finally:
        reset_request(token)
        engine.dispose()
    [slow] = logs.named("slow_query")
    assert slow["level"] == "warning"
    assert slow["duration_ms"] >= 200
    assert slow["threshold_ms"] == 100
    assert slow["request_id"] == "req-slow-1"
    assert "sleep(0.2)" in slow["statement"]
    assert SECRET not in "\n".join(logs.lines)
    assert "error" not in slow
    assert sample("db_client_slow_queries_total", database_url) == 1
    assert sample("db_client_operation_duration_seconds_count", database_url) >= 2


def test_a_long_statement_is_cut_at_500_characters(tmp_path):
    url = f"sqlite:///{tmp_path}/app.db"
    settings = settings_for(url, FENDER_SLOW_QUERY_MS="50")
    engine = engine_from_settings(settings)
    with_sleep(engine)
    padding = " + ".join(["1"] * 400)  # 1,600 characters over several lines
    statement = f"select sleep(0.1),\n  {padding} as total"
    try:
        with capture_logs(settings) as logs, engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()
    [slow] = logs.named("slow_query")
    assert len(slow["statement"]) == 500
    assert slow["statement"].startswith("select sleep(0.1), 1 + 1")  # one line


@pytest.mark.postgres
def test_a_slow_statement_that_fails_is_a_slow_query_too(postgres_url):
    settings = settings_for(postgres_url, FENDER_SLOW_QUERY_MS="100")
    engine = engine_from_settings(settings)
    try:
        with capture_logs(settings) as logs, engine.connect() as connection:
            connection.execute(text("set statement_timeout = 200"))
            with pytest.raises(sqlalchemy.exc.OperationalError):
                connection.execute(text("select pg_sleep(5)"))
    finally:
        engine.dispose()
    [slow] = logs.named("slow_query")
    assert slow["error"] == "QueryCanceled"
    assert slow["duration_ms"] >= 200


@pytest.mark.postgres
def test_the_async_engine_is_metered_and_logs_slow_queries_in_the_request(postgres_url):
    settings = settings_for(postgres_url, FENDER_SLOW_QUERY_MS="100")

    async def run() -> None:
        engine = async_engine_from_settings(settings)
        token = bind_request(RequestContext("req-async-1"))
        try:
            async with engine.connect() as connection:
                assert counts(postgres_url) == {"idle": 0, "used": 1}
                await connection.execute(text("select pg_sleep(0.2), :secret"), {"secret": SECRET})
        finally:
            reset_request(token)
            await engine.dispose()

    with capture_logs(settings) as logs:
        asyncio.run(run())
    [slow] = logs.named("slow_query")
    assert slow["request_id"] == "req-async-1"  # through SQLAlchemy's greenlet
    assert SECRET not in "\n".join(logs.lines)
    assert counts(postgres_url) == {"idle": 0, "used": 0}
    assert sample("db_client_connection_wait_time_seconds_count", postgres_url) == 1


def test_an_in_memory_sqlite_engine_gets_statement_metrics_only():
    url = "sqlite://"
    engine = engine_from_settings(settings_for(url, FENDER_SLOW_QUERY_MS="1000"))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("select 1")).scalar() == 1
        assert type(engine.pool).__name__ == "SingletonThreadPool"
    finally:
        engine.dispose()
    assert sample("db_client_operation_duration_seconds_count", url) >= 1
