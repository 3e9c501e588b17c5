"""The app's database engine: one per process from DATABASE_URL, metered, checked, disposed.

:func:`engine` (sync) and :func:`async_engine` (asyncio) are built on first use and shared by
every thread (or task) of the process. With DATABASE_URL set, ``fender.install`` makes its
settings their default, adds the readiness check over the same pool (and the Alembic head
check, when the app uses Alembic), and closes the pools at shutdown. A forked
child (gunicorn ``--preload``) drops the parent's connections and opens its own.

Pool: DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT, DB_POOL_RECYCLE and a pre-ping; metrics
named after OpenTelemetry's ``db.client.connection.*``; statements slower than
FENDER_SLOW_QUERY_MS are a ``slow_query`` warning (the statement, never its parameters) and
counted. Passwords are never logged or reported.

Example::

    from sqlalchemy import text
    import fender.db

    @app.get("/users/{user_id}")
    def user(user_id: int) -> dict[str, str]:
        with fender.db.engine().connect() as connection:
            query = text("select name from users where id = :id")
            return {"name": connection.execute(query, {"id": user_id}).scalar_one()}
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from fender.db import _shared
from fender.db._build import EngineSpec, build_async, build_sync
from fender.db._checks import database_health_check
from fender.db._url import NoEngine
from fender.settings import Settings

__all__ = [
    "adispose",
    "async_engine",
    "async_engine_from_settings",
    "database_health_check",
    "dispose",
    "engine",
    "engine_from_settings",
]


def engine(settings: Settings | None = None) -> Engine:
    """The process's shared sync engine for DATABASE_URL, built on first use.

    Without ``settings``: those fender was installed with (the last app in this process), or
    else the environment's. With them: the shared engine of their DATABASE_URL and pool
    settings. Safe to call from any thread, on every request (a dictionary read).

    Raises:
        ConfigurationError: naming DATABASE_URL (password masked) when the URL does not parse,
            SQLAlchemy knows no such dialect, the driver is not installed or is an async one.
    """
    try:
        return _shared.engine(settings)
    except NoEngine as exc:
        raise exc.configuration_error() from None


def async_engine(settings: Settings | None = None) -> AsyncEngine:
    """The process's shared asyncio engine for DATABASE_URL, built on first use.

    SQLite runs on aiosqlite, PostgreSQL on psycopg (3) (or the async driver the URL names):
    ``pip install 'fender[asyncio]'`` (and ``fender[postgres]``). Its connections belong to the
    event loop that opened them; fender disposes them when the app shuts down.

    Raises:
        ConfigurationError: naming DATABASE_URL with the fix, as :func:`engine`, and when the
            driver has no asyncio support or the async driver is not installed.
    """
    try:
        return _shared.async_engine(settings)
    except NoEngine as exc:
        raise exc.configuration_error() from None


def dispose(settings: Settings | None = None) -> None:
    """Close the pooled connections of the shared sync engine; it reconnects when used again."""
    _shared.dispose(settings)


async def adispose(settings: Settings | None = None) -> None:
    """Close the pooled connections of the shared asyncio engine (on the loop that opened them)."""
    await _shared.adispose(settings)


def engine_from_settings(settings: Settings, **options: Any) -> Engine:
    """A new engine of its own (not the shared one); ``options`` go to ``create_engine`` and win.

    Metered and timed like the shared one. The engine connects lazily: building it checks the
    URL, the dialect and the driver, not the database.

    Raises:
        ConfigurationError: as :func:`engine`.
    """
    try:
        return build_sync(EngineSpec.from_settings(settings), options)
    except NoEngine as exc:
        raise exc.configuration_error() from None


def async_engine_from_settings(settings: Settings, **options: Any) -> AsyncEngine:
    """A new asyncio engine of its own; ``options`` go to ``create_async_engine`` and win.

    Raises:
        ConfigurationError: as :func:`async_engine`.
    """
    try:
        return build_async(EngineSpec.from_settings(settings), options)
    except NoEngine as exc:
        raise exc.configuration_error() from None
