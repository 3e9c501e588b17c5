"""The process's shared engines: built lazily once, shared by threads, reset after a fork.

One engine per distinct :class:`~fender.db._build.EngineSpec` (in production: one, from
DATABASE_URL) and per flavour (sync, asyncio). Without settings, the engine is the one of the
settings fender was installed with last in this process (the app's), else of the environment.

A forked child (a gunicorn worker under ``--preload``) must not use the parent's connections:
the sockets are shared with the parent, and two processes talking over one connection corrupt
it. The child drops them without closing (``dispose(close=False)``, as SQLAlchemy's guide on
multiprocessing says), so the parent's stay intact, and opens its own.
"""

from __future__ import annotations

import os
import threading
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from fender.db._build import EngineSpec, build_async, build_sync
from fender.db._metrics import after_fork_in_child
from fender.settings import Settings, load_settings

__all__ = ["adispose", "async_engine", "dispose", "engine", "use_settings"]

E = TypeVar("E", Engine, AsyncEngine)

_lock = threading.Lock()
_sync: dict[EngineSpec, Engine] = {}
_async: dict[EngineSpec, AsyncEngine] = {}
_default: EngineSpec | None = None
# The default spec's engines, read without the lock on the hot path (engine() in a route).
_default_sync: Engine | None = None
_default_async: AsyncEngine | None = None


def use_settings(settings: Settings) -> None:
    """Make ``settings`` the default of :func:`engine` and :func:`async_engine` (install)."""
    global _default, _default_sync, _default_async
    spec = EngineSpec.from_settings(settings)
    with _lock:
        if spec != _default:
            _default, _default_sync, _default_async = spec, None, None


def _spec(settings: Settings | None) -> EngineSpec:
    global _default  # noqa: PLW0603  (process-wide default)
    if settings is not None:
        return EngineSpec.from_settings(settings)
    with _lock:
        if _default is None:
            _default = EngineSpec.from_settings(load_settings())
        return _default


def _get(spec: EngineSpec, built: dict[EngineSpec, E], build: Any) -> E:
    found = built.get(spec)
    if found is not None:
        return found
    with _lock:
        found = built.get(spec)
        if found is None:
            found = built[spec] = build(spec, {})
        return found


def engine(settings: Settings | None = None) -> Engine:
    """The shared sync engine (see :func:`fender.db.engine`); raises NoEngine."""
    global _default_sync  # noqa: PLW0603  (the hot path's cache)
    if settings is None and _default_sync is not None:
        return _default_sync
    spec = _spec(settings)
    found = _get(spec, _sync, build_sync)
    if spec == _default:
        _default_sync = found
    return found


def async_engine(settings: Settings | None = None) -> AsyncEngine:
    """The shared asyncio engine (see :func:`fender.db.async_engine`); raises NoEngine."""
    global _default_async  # noqa: PLW0603  (the hot path's cache)
    if settings is None and _default_async is not None:
        return _default_async
    spec = _spec(settings)
    found = _get(spec, _async, build_async)
    if spec == _default:
        _default_async = found
    return found


def dispose(settings: Settings | None = None) -> None:
    """Close the shared sync engine's pooled connections, if it was built; it stays usable."""
    found = _sync.get(_spec(settings))
    if found is not None:
        found.dispose()


async def adispose(settings: Settings | None = None) -> None:
    """Close the shared asyncio engine's pooled connections, if it was built."""
    found = _async.get(_spec(settings))
    if found is None:
        return
    try:
        await found.dispose()
    except RuntimeError:
        # Its connections belong to an event loop that is gone (a test's): nothing to close
        # them with; drop them instead of failing the shutdown.
        found.sync_engine.dispose(close=False)


def _after_fork_in_child() -> None:
    global _lock  # noqa: PLW0603  (another thread may have held it at the fork)
    _lock = threading.Lock()
    for found in _sync.values():
        found.dispose(close=False)
    for found_async in _async.values():
        found_async.sync_engine.dispose(close=False)
    after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
