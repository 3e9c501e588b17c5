"""Fixtures for real servers: redis-server and PostgreSQL on free loopback ports.

``redis_server`` / ``postgres_server`` are private to one test, which may kill, pause (SIGSTOP),
resume or restart them. ``redis_url`` / ``postgres_url`` share one server per session and give
each test a clean database. See ``servers.py``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from servers import PostgresServer, RedisServer, find_postgres_bin, find_redis, missing

# No per-example deadline: speed is measured in bench/, and a loaded CI machine must not turn
# a slow example into a failure.
settings.register_profile("fender", deadline=None)
settings.load_profile("fender")

# fender relaxes its production rules and its default rate limit when it detects a test run
# (pytest sets PYTEST_VERSION). Its own tests assert production behaviour, so they say so; the
# tests that play a user's suite (tests/realapps) delete this to let fender detect the run.
os.environ.setdefault("FENDER_TESTING", "0")

_database_numbers = itertools.count(1)


def _running_redis() -> Iterator[RedisServer]:
    binary = find_redis()
    if binary is None:
        missing("redis-server")
    server = RedisServer(binary)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, free to break."""
    yield from _running_redis()


@pytest.fixture(scope="session")
def _shared_redis() -> Iterator[RedisServer]:
    yield from _running_redis()


@pytest.fixture
def redis_url(_shared_redis: RedisServer) -> str:
    """URL of an emptied database on the session's shared redis-server."""
    client = _shared_redis.client()
    client.flushall()  # type: ignore[attr-defined]
    client.close()  # type: ignore[attr-defined]
    return _shared_redis.url


@pytest.fixture(scope="session")
def _postgres_template() -> Iterator[tuple[Path, Path]]:
    bindir = find_postgres_bin()
    if bindir is None:
        missing("PostgreSQL (postgres, initdb)")
    datadir = PostgresServer.initdb(bindir)  # type: ignore[arg-type]
    yield bindir, datadir  # type: ignore[misc]
    import shutil

    shutil.rmtree(datadir, ignore_errors=True)


def _running_postgres(template: tuple[Path, Path]) -> Iterator[PostgresServer]:
    bindir, datadir = template
    server = PostgresServer(bindir, datadir).copy()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def _shared_postgres(_postgres_template: tuple[Path, Path]) -> Iterator[PostgresServer]:
    yield from _running_postgres(_postgres_template)


@pytest.fixture
def postgres_server(_postgres_template: tuple[Path, Path]) -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (a copy of the session's fresh cluster)."""
    yield from _running_postgres(_postgres_template)


@pytest.fixture
def postgres_url(_shared_postgres: PostgresServer) -> str:
    """SQLAlchemy URL of a new, empty database on the session's shared PostgreSQL."""
    import psycopg

    name = f"test_{next(_database_numbers)}"
    with psycopg.connect(_shared_postgres.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:{_shared_postgres.port}/{name}"
