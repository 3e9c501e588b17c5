"""The SQLAlchemy engine, built from the settings with an explicit, bounded pool.

SQLite (the embedded default) gets SQLAlchemy's own pooling for file databases; every other
database gets a QueuePool sized by DB_POOL_SIZE / DB_MAX_OVERFLOW with DB_POOL_TIMEOUT,
DB_POOL_RECYCLE and a pre-ping, so a restarted database costs one failed check, not an error
per pooled connection.

``postgres://`` and ``postgresql://`` URLs use psycopg 3 (the settings rewrite them to
``postgresql+psycopg://``). A dialect SQLAlchemy does not know, or a driver that is not
installed, is a :class:`~fender.errors.ConfigurationError` naming DATABASE_URL when the engine
is built, never an import error at the first query.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from fender.errors import ConfigurationError
from fender.settings import POSTGRES_DRIVER, Settings

__all__ = ["engine_from_settings"]

_FIELD = "DATABASE_URL"
_EXAMPLES = f"{POSTGRES_DRIVER}://user:password@host:5432/db or sqlite:///app.db"
# What to install for the drivers fender documents; any other driver: its own package.
_INSTALL = {POSTGRES_DRIVER: "pip install 'fender[postgres]'"}


def engine_from_settings(settings: Settings, **options: Any) -> Engine:
    """An engine for DATABASE_URL; ``options`` go to ``create_engine`` and win.

    The engine connects lazily: building it checks the URL, the dialect and the driver, not
    the database.

    Raises:
        ConfigurationError: naming DATABASE_URL (password masked) when the URL does not parse,
            SQLAlchemy knows no such dialect, or the dialect's driver is not installed.
    """
    url = _parse(settings.database_url)
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
        expected = f"a URL of a dialect SQLAlchemy knows ({url.drivername!r} is none): {_EXAMPLES}"
        raise ConfigurationError(_FIELD, shown, expected) from None
    except ImportError as exc:
        install = _INSTALL.get(url.drivername, "install it")
        expected = (
            f"a URL whose driver is installed ({url.drivername} needs the {exc.name or exc} "
            f"module: {install}, or name an installed driver as in {_EXAMPLES})"
        )
        raise ConfigurationError(_FIELD, shown, expected) from None


def _parse(text: str) -> URL:
    try:
        return make_url(text)
    except (ArgumentError, ValueError):
        # Unparsed, the password cannot be told apart: show the length only.
        expected = f"a SQLAlchemy URL such as {_EXAMPLES}"
        raise ConfigurationError(_FIELD, text, expected, secret=True) from None
