"""Engines from the settings: a bounded, pre-pinged pool, metered, with slow-query events.

Every pooled engine (QueuePool: PostgreSQL and other servers, SQLite files) gets a pool sized
by DB_POOL_SIZE / DB_MAX_OVERFLOW with DB_POOL_TIMEOUT, DB_POOL_RECYCLE and a pre-ping, so a
restarted database costs one failed check, not an error per pooled connection. PostgreSQL
connects with a timeout of NETWORK_TIMEOUT_SEC (at least 1 s: libpq counts whole seconds).
In-memory SQLite keeps SQLAlchemy's one-connection pool. Engines connect lazily: building
one checks the URL, the dialect and the driver, not the database.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import InvalidRequestError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool, QueuePool

from fender.db import _url
from fender.db._metrics import instrument, meter_for, metered_pool_class
from fender.observability._logging import get_logger
from fender.settings import Settings

__all__ = ["EngineSpec", "build_async", "build_sync"]

# libpq-style drivers take connect_timeout (whole seconds); asyncpg takes timeout.
_CONNECT_TIMEOUT = {
    "psycopg": "connect_timeout",
    "psycopg_async": "connect_timeout",
    "psycopg2": "connect_timeout",
    "asyncpg": "timeout",
}
_logger = get_logger("fender.db")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EngineSpec:
    """What an engine is built from: one shared engine per distinct spec in a process."""

    url: str = dataclasses.field(repr=False)  # as written: it may hold the password
    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_recycle: int
    connect_timeout: int
    slow_query_ms: float

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineSpec:
        """DATABASE_URL (as the app wrote it), the DB_POOL_* values and the slow threshold."""
        return cls(
            url=_url.written_url(settings),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            pool_recycle=settings.db_pool_recycle,
            connect_timeout=max(1, round(settings.network_timeout_sec)),
            slow_query_ms=settings.slow_query_ms,
        )


def build_sync(spec: EngineSpec, options: dict[str, Any]) -> Engine:
    """A sync engine for ``spec``; ``options`` go to ``create_engine`` and win.

    Raises:
        NoEngine: the URL does not parse, names an unknown dialect, a missing driver, or an
            async one.
    """
    url = _url.parse(spec.url)
    kwargs = _kwargs(url, spec, options, is_async=False)
    try:
        engine = create_engine(url, **kwargs)
    except ImportError as exc:
        raise _url.missing_driver(url, exc) from None
    return _instrumented(engine, url, spec)


def build_async(spec: EngineSpec, options: dict[str, Any]) -> AsyncEngine:
    """An asyncio engine for ``spec`` (aiosqlite, psycopg 3, or the async driver named).

    Raises:
        NoEngine: as :func:`build_sync`, and when the driver has no asyncio support or
            SQLAlchemy's asyncio layer (greenlet) is not installed.
    """
    url = _url.async_url(spec.url)
    kwargs = _kwargs(url, spec, options, is_async=True)
    try:
        engine = create_async_engine(url, **kwargs)
    except ImportError as exc:
        raise _url.missing_driver(url, exc) from None
    except InvalidRequestError:  # "The asyncio extension requires an async driver"
        raise _url.sync_only(url) from None
    _instrumented(engine.sync_engine, url, spec)
    return engine


def _kwargs(
    url: URL, spec: EngineSpec, options: dict[str, Any], *, is_async: bool
) -> dict[str, Any]:
    try:
        dialect = url.get_dialect(_is_async=is_async)
    except NoSuchModuleError:
        raise _url.unknown_dialect(url) from None
    except ImportError as exc:
        raise _url.missing_driver(url, exc) from None
    if dialect.is_async and not is_async:
        raise _url.async_only(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    default: type[Pool] = dialect.get_pool_class(url)  # type: ignore[attr-defined]  # every DefaultDialect has it
    poolclass: type[Pool] = options.get("poolclass") or default
    if issubclass(poolclass, QueuePool):
        kwargs.update(
            pool_size=spec.pool_size,
            max_overflow=spec.max_overflow,
            pool_timeout=spec.pool_timeout,
            pool_recycle=spec.pool_recycle,
        )
        if "poolclass" not in options:
            kwargs["poolclass"] = metered_pool_class(poolclass, meter_for(_url.pool_name(url)))
    timeout_arg = _CONNECT_TIMEOUT.get(url.get_driver_name())
    if timeout_arg and url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {timeout_arg: spec.connect_timeout}
    kwargs.update(options)
    return kwargs


def _instrumented(engine: Engine, url: URL, spec: EngineSpec) -> Engine:
    meter = meter_for(_url.pool_name(url))
    instrument(engine, meter, slow_query_ms=spec.slow_query_ms)
    pool = engine.pool
    _logger.info(
        "db_engine_created",
        url=_url.shown(url),
        pool_name=meter.name,
        pool=type(pool).__name__,
        pool_size=pool.size() if isinstance(pool, QueuePool) else None,
        asyncio=engine.dialect.is_async,
    )
    return engine
