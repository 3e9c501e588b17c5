"""The SQLAlchemy engine, built from the settings with an explicit, bounded pool.

SQLite (the embedded default) gets SQLAlchemy's own pooling for file databases; every other
database gets a QueuePool sized by DB_POOL_SIZE / DB_MAX_OVERFLOW with DB_POOL_TIMEOUT,
DB_POOL_RECYCLE and a pre-ping, so a restarted database costs one failed check, not an error
per pooled connection.

DATABASE_URL belongs to the app: Django, SQLAlchemy and the app's own code read it too. fender
reads it as they do and never rewrites it for them. For its own engine, a PostgreSQL URL that
names no driver (``postgres://``, ``postgresql://``) gets the first driver that imports, psycopg
(3) then psycopg2; a URL that names one gets that one.

:func:`engine_from_settings` raises :class:`~fender.errors.ConfigurationError` naming
DATABASE_URL when the engine cannot be built: the caller asked for an engine. The check fender
adds by itself, :func:`database_health_check`, never raises: what would have been that error
is a ``warn`` on the check (degraded, HTTP 200), so an app that boots without fender boots with
it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health import Check, CheckResult, database_check
from fender.observability._logging import get_logger
from fender.settings import POSTGRES_DRIVER, Settings, redact_url

__all__ = ["database_health_check", "engine_from_settings"]

_FIELD = "DATABASE_URL"
_EXAMPLES = "postgresql://user:password@host:5432/db or sqlite:///app.db"
# Heroku's scheme, which Django reads and SQLAlchemy (since 1.4) does not: the same dialect.
_POSTGRES_ALIASES = frozenset({"postgres", "postgresql"})
# A driverless PostgreSQL URL: fender's own engine takes the first of these that imports.
_POSTGRES_DRIVERS = ("psycopg", "psycopg2")
_FENDER_POSTGRES = "pip install 'fender[postgres]'"
# What to install for the drivers fender documents; any other driver: its own package.
_INSTALL = {"psycopg": _FENDER_POSTGRES, "psycopg2": "pip install psycopg2-binary"}

_logger = get_logger("fender.db")


class _NoEngine(Exception):  # noqa: N818  (internal; becomes a ConfigurationError or a warning)
    """DATABASE_URL gives fender no engine: the error a caller sees, and the check's output."""

    def __init__(self, value: str, expected: str, output: str, *, secret: bool = False) -> None:
        super().__init__(output)
        self.value = value
        self.expected = expected
        self.output = output
        self.secret = secret

    def configuration_error(self) -> ConfigurationError:
        return ConfigurationError(_FIELD, self.value, self.expected, secret=self.secret)


def engine_from_settings(settings: Settings, **options: Any) -> Engine:
    """An engine for DATABASE_URL; ``options`` go to ``create_engine`` and win.

    The engine connects lazily: building it checks the URL, the dialect and the driver, not
    the database.

    Raises:
        ConfigurationError: naming DATABASE_URL (password masked) when the URL does not parse,
            SQLAlchemy knows no such dialect, or the dialect's driver is not installed.
    """
    try:
        return _engine(settings, options)
    except _NoEngine as exc:
        raise exc.configuration_error() from None


def database_health_check(
    settings: Settings, *, name: str = "database"
) -> tuple[Check, Callable[[], None]]:
    """The readiness check fender adds for DATABASE_URL, and the closer that frees its pool.

    Never raises: a URL that does not parse, a dialect SQLAlchemy does not know, an async or
    missing driver each make a check that always reports ``warn`` with the fix, and one
    ``database_check_degraded`` warning is logged at start-up.

    Example:
        >>> from fender.settings import load_settings
        >>> settings = load_settings({"DATABASE_URL": "sqlite://"}, env_file=None)
        >>> check, close = database_health_check(settings)
        >>> check.name
        'database'
        >>> close()
    """
    try:
        engine = _engine(settings, {})
    except _NoEngine as exc:
        output = exc.output
    except Exception as exc:  # nothing fender adds by itself may stop the app from booting
        output = f"fender's engine for DATABASE_URL failed to build ({type(exc).__name__})"
    else:
        if not engine.dialect.is_async:
            return database_check(engine, name=name), engine.dispose
        engine.dispose()
        output = (
            f"{engine.url.drivername} is an async driver; fender's own check is sync: "
            "register fender.health.database_check(your AsyncEngine)"
        )
    _logger.warning("database_check_degraded", check=name, reason=output)
    return _warning_check(name, output), _nothing


def _engine(settings: Settings, options: dict[str, Any]) -> Engine:
    url = _parse(_written_url(settings))
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() != "sqlite":
        kwargs.update(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            pool_recycle=settings.db_pool_recycle,
        )
        if url.get_backend_name() == "postgresql":
            timeout = max(1, round(settings.network_timeout_sec))
            kwargs["connect_args"] = {"connect_timeout": timeout}
    kwargs.update(options)
    shown = url.render_as_string(hide_password=True)
    try:
        return create_engine(url, **kwargs)
    except NoSuchModuleError:
        name = url.get_backend_name()
        raise _NoEngine(
            shown,
            f"a URL of a dialect SQLAlchemy knows ({url.drivername!r} is none): {_EXAMPLES}",
            f"unknown dialect {name!r} in DATABASE_URL {shown}",
        ) from None
    except ImportError as exc:
        needs = f"{url.drivername} needs the {exc.name or exc} module"
        install = _INSTALL.get(url.get_driver_name())
        raise _NoEngine(
            shown,
            f"a URL whose driver is installed ({needs}: {install or 'install it'}, "
            f"or name an installed driver as in {_EXAMPLES})",
            f"driver not installed: {install} ({needs})"
            if install
            else f"driver not installed: {needs}",
        ) from None


def _written_url(settings: Settings) -> str:
    """DATABASE_URL as the app wrote it, which the settings may have rewritten for psycopg 3.

    The settings turn ``postgres://`` and ``postgresql://`` into POSTGRES_DRIVER URLs; when the
    environment holds exactly the URL so rewritten, that is what the user wrote.
    """
    value = settings.database_url
    written = os.environ.get(_FIELD, "")
    scheme, separator, rest = written.partition("://")
    if separator and scheme in _POSTGRES_ALIASES and value == f"{POSTGRES_DRIVER}://{rest}":
        return written
    return value


def _parse(text: str) -> URL:
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        # Unparsed, the password cannot be told apart: the error shows the length only.
        raise _NoEngine(
            text,
            f"a SQLAlchemy URL such as {_EXAMPLES}",
            f"DATABASE_URL does not parse as a SQLAlchemy URL: {redact_url(text)}",
            secret=True,
        ) from None
    backend, plus, driver = url.drivername.partition("+")
    if backend not in _POSTGRES_ALIASES:
        return url
    if not plus:
        driver = _installed_postgres_driver(url)
    return url.set(drivername=f"postgresql+{driver}")


def _installed_postgres_driver(url: URL) -> str:
    for driver in _POSTGRES_DRIVERS:
        try:
            importlib.import_module(driver)
        except ImportError:
            continue
        return driver
    shown = url.render_as_string(hide_password=True)
    needs = f"{url.drivername} needs psycopg or psycopg2"
    raise _NoEngine(
        shown,
        f"a URL whose driver is installed ({needs}: {_FENDER_POSTGRES})",
        f"driver not installed: {_FENDER_POSTGRES} ({needs})",
    )


def _warning_check(name: str, output: str) -> Check:
    # The same name and health+json key as the working check, so dashboards see one series.
    result = CheckResult(Status.WARN, output)
    return Check(
        name=name,
        func=lambda: result,
        component_type="datastore",
        measurement="responseTime",
    )


def _nothing() -> None:
    """Nothing to free: the check holds no engine."""
