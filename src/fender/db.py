"""The SQLAlchemy engine, built from the settings with an explicit, bounded pool.

SQLite (the embedded default) gets SQLAlchemy's own pooling for file databases; every other
database gets a QueuePool sized by DB_POOL_SIZE / DB_MAX_OVERFLOW with DB_POOL_TIMEOUT,
DB_POOL_RECYCLE and a pre-ping, so a restarted database costs one failed check, not an error
per pooled connection.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from fender.settings import Settings

__all__ = ["engine_from_settings"]


def engine_from_settings(settings: Settings, **options: Any) -> Engine:
    """An engine for DATABASE_URL; ``options`` go to ``create_engine`` and win."""
    url = make_url(settings.database_url)
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
    return create_engine(url, **kwargs)
