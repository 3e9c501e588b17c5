"""DATABASE_URL read as the app's own driver reads it: the URL, its driver, its pool's name.

DATABASE_URL belongs to the app: Django, SQLAlchemy and the app's own code read it too. fender
reads it as they do and never rewrites it for them. For its own engines, a PostgreSQL URL that
names no driver (``postgres://``, ``postgresql://``) gets the first driver that imports, psycopg
(3) then psycopg2 (asyncio: psycopg only); a URL that names one gets that one.

Every failure is a :class:`NoEngine` holding both what a caller who asked for an engine sees
(a :class:`~fender.errors.ConfigurationError` naming DATABASE_URL, password masked) and what
the health check fender adds by itself says instead of failing the boot.
"""

from __future__ import annotations

import importlib
import os

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from fender.errors import ConfigurationError
from fender.settings import POSTGRES_DRIVER, Settings, redact_url

__all__ = ["FIELD", "NoEngine", "async_url", "parse", "pool_name", "shown", "written_url"]

FIELD = "DATABASE_URL"
_EXAMPLES = "postgresql://user:password@host:5432/db or sqlite:///app.db"
# Heroku's scheme, which Django reads and SQLAlchemy (since 1.4) does not: the same dialect.
_POSTGRES_ALIASES = frozenset({"postgres", "postgresql"})
# A driverless PostgreSQL URL: fender's own engine takes the first of these that imports.
_POSTGRES_DRIVERS = ("psycopg", "psycopg2")
_FENDER_POSTGRES = "pip install 'fender[postgres]'"
_FENDER_ASYNCIO = "pip install 'fender[asyncio]'"
# What to install for the drivers fender documents; any other driver: its own package.
INSTALL = {
    "psycopg": _FENDER_POSTGRES,
    "psycopg_async": _FENDER_POSTGRES,
    "psycopg2": "pip install psycopg2-binary",
    "aiosqlite": _FENDER_ASYNCIO,
}
# The async twin of a sync driver, for async_engine(); psycopg (3) serves both.
_ASYNC_DRIVERS = {("sqlite", ""): "aiosqlite", ("sqlite", "pysqlite"): "aiosqlite"}


class NoEngine(Exception):  # noqa: N818  (internal; becomes a ConfigurationError or a warning)
    """DATABASE_URL gives fender no engine: the error a caller sees, and the check's output."""

    def __init__(self, value: str, expected: str, output: str, *, secret: bool = False) -> None:
        """``value`` is the URL as shown (masked), ``output`` what the check reports."""
        super().__init__(output)
        self.value = value
        self.expected = expected
        self.output = output
        self.secret = secret

    def configuration_error(self) -> ConfigurationError:
        """The error for a caller who asked for an engine."""
        return ConfigurationError(FIELD, self.value, self.expected, secret=self.secret)


def written_url(settings: Settings) -> str:
    """DATABASE_URL as the app wrote it, which the settings may have rewritten for psycopg 3.

    The settings turn ``postgres://`` and ``postgresql://`` into POSTGRES_DRIVER URLs; when the
    environment holds exactly the URL so rewritten, that is what the user wrote.
    """
    value = settings.database_url
    written = os.environ.get(FIELD, "")
    scheme, separator, rest = written.partition("://")
    if separator and scheme in _POSTGRES_ALIASES and value == f"{POSTGRES_DRIVER}://{rest}":
        return written
    return value


def shown(url: URL) -> str:
    """The URL with its password masked: the only form fender logs or reports."""
    return url.render_as_string(hide_password=True)


def parse(text: str) -> URL:
    """The URL fender's sync engine connects with (a driverless PostgreSQL URL completed)."""
    url = _parse(text)
    backend, plus, driver = url.drivername.partition("+")
    if backend not in _POSTGRES_ALIASES:
        return url
    if not plus:
        driver = _installed_postgres_driver(url)
    return url.set(drivername=f"postgresql+{driver}")


def async_url(text: str) -> URL:
    """The URL fender's asyncio engine connects with: an async driver, installed, or NoEngine.

    SQLite gets aiosqlite, PostgreSQL psycopg (3), whose dialect SQLAlchemy turns async;
    SQLAlchemy's asyncio layer needs greenlet.
    """
    url = _parse(text)
    backend, _, driver = url.drivername.partition("+")
    if backend in _POSTGRES_ALIASES:
        backend = "postgresql"
        if driver in ("", "psycopg"):
            driver = "psycopg"
            _require(url, "psycopg", _FENDER_POSTGRES)
        elif driver == "psycopg2":
            raise _sync_only(url, f"{backend}+psycopg")
    driver = _ASYNC_DRIVERS.get((backend, driver), driver)
    if driver == "aiosqlite":
        _require(url, "aiosqlite", _FENDER_ASYNCIO)
    try:
        importlib.import_module("greenlet")
    except ImportError:
        raise NoEngine(
            shown(url),
            f"SQLAlchemy's asyncio support installed (it needs greenlet: {_FENDER_ASYNCIO})",
            f"asyncio not installed: {_FENDER_ASYNCIO} (SQLAlchemy's asyncio needs greenlet)",
        ) from None
    return url.set(drivername=f"{backend}+{driver}" if driver else backend)


def sync_only(url: URL) -> NoEngine:
    """What a driver SQLAlchemy has no asyncio dialect for gets from async_engine()."""
    return _sync_only(url, "an async driver")


def _sync_only(url: URL, instead: str) -> NoEngine:
    return NoEngine(
        shown(url),
        f"a URL with an async driver for fender.db.async_engine() ({url.drivername} has no "
        f"asyncio support: use {instead}, as in {_EXAMPLES})",
        f"{url.drivername} has no asyncio support",
    )


def async_only(url: URL) -> NoEngine:
    """What an async driver gets from a sync engine (and the check fender adds by itself)."""
    return NoEngine(
        shown(url),
        f"a sync driver for fender.db.engine() ({url.drivername} is async: use "
        "fender.db.async_engine(), or a sync driver as in "
        f"{_EXAMPLES})",
        f"{url.drivername} is an async driver; fender's own check is sync: "
        "register fender.health.database_check(your AsyncEngine)",
    )


def missing_driver(url: URL, exc: ImportError) -> NoEngine:
    """The driver the URL names does not import."""
    needs = f"{url.drivername} needs the {exc.name or exc} module"
    install = INSTALL.get(url.get_driver_name())
    return NoEngine(
        shown(url),
        f"a URL whose driver is installed ({needs}: {install or 'install it'}, "
        f"or name an installed driver as in {_EXAMPLES})",
        f"driver not installed: {install} ({needs})"
        if install
        else f"driver not installed: {needs}",
    )


def unknown_dialect(url: URL) -> NoEngine:
    """SQLAlchemy knows no dialect by the URL's name."""
    return NoEngine(
        shown(url),
        f"a URL of a dialect SQLAlchemy knows ({url.drivername!r} is none): {_EXAMPLES}",
        f"unknown dialect {url.get_backend_name()!r} in DATABASE_URL {shown(url)}",
    )


def pool_name(url: URL) -> str:
    """The pool's name in metrics: ``host[:port]/database``, or the SQLite file; no user."""
    database = url.database or ""
    if not url.host:
        return database or ":memory:"
    port = f":{url.port}" if url.port else ""
    return f"{url.host}{port}/{database}"


def _parse(text: str) -> URL:
    try:
        return make_url(text)
    except (ArgumentError, ValueError):
        # Unparsed, the password cannot be told apart: the error shows the length only.
        raise NoEngine(
            text,
            f"a SQLAlchemy URL such as {_EXAMPLES}",
            f"DATABASE_URL does not parse as a SQLAlchemy URL: {redact_url(text)}",
            secret=True,
        ) from None


def _require(url: URL, module: str, install: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        needs = f"{url.drivername} needs {module} for asyncio"
        raise NoEngine(
            shown(url),
            f"a URL whose async driver is installed ({needs}: {install})",
            f"driver not installed: {install} ({needs})",
        ) from None


def _installed_postgres_driver(url: URL) -> str:
    for driver in _POSTGRES_DRIVERS:
        try:
            importlib.import_module(driver)
        except ImportError:
            continue
        return driver
    needs = f"{url.drivername} needs psycopg or psycopg2"
    raise NoEngine(
        shown(url),
        f"a URL whose driver is installed ({needs}: {_FENDER_POSTGRES})",
        f"driver not installed: {_FENDER_POSTGRES} ({needs})",
    )
