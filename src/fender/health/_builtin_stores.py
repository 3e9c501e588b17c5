"""Ready-made checks of data stores and workers: Redis, a SQL database, Celery.

A sync client (redis-py, a SQLAlchemy ``Engine``, Celery) runs on the registry's thread pool,
an async one (``redis.asyncio``, an ``AsyncEngine``) on its event loop. Failures are raised or
returned as results; the registry times them out and sanitizes their messages. SQLAlchemy and
celery are imported when a factory is called, not when this module is.
"""

from __future__ import annotations

import importlib
import inspect
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health._check import Check, CheckResult

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["SupportsPing", "celery_check", "database_check", "redis_check"]


class SupportsPing(Protocol):
    """Anything with ``ping()``: a redis-py client, sync or asyncio, or a stand-in."""

    def ping(self) -> object:
        """Return truthy (or an awaitable of it) when the server answers."""
        ...


def _ping_result(reply: object, elapsed: float) -> CheckResult:
    if not reply:
        return CheckResult(Status.FAIL, f"ping replied {reply!r}")
    return CheckResult(Status.PASS, observed_value=round(elapsed * 1000, 3), observed_unit="ms")


def redis_check(client: SupportsPing, *, name: str = "redis") -> Check:
    """Redis answers ``PING``; ``client`` is a redis-py client (sync or asyncio) or alike.

    The client's own socket timeouts bound a sync ping's thread; set them (fender's Redis
    factory does). Observed value: round trip in ms (``redis:responseTime``).
    """
    ping = getattr(client, "ping", None)
    if not callable(ping):
        raise ConfigurationError("client", type(client).__name__, "an object with ping()")
    # redis.asyncio's ping() is a plain method returning a coroutine; its execute_command is
    # the async def that gives the client away.
    is_async = inspect.iscoroutinefunction(ping) or inspect.iscoroutinefunction(
        getattr(client, "execute_command", None)
    )
    if is_async:

        async def redis_async() -> CheckResult:
            started = time.perf_counter()
            reply = await ping()
            return _ping_result(reply, time.perf_counter() - started)

        func: Callable[[], Any] = redis_async
    else:

        def redis_sync() -> object:
            started = time.perf_counter()
            reply = ping()
            if inspect.isawaitable(reply):  # an async client we did not recognise
                return _await_later(reply, started)
            return _ping_result(reply, time.perf_counter() - started)

        func = redis_sync
    return Check(name=name, func=func, component_type="datastore", measurement="responseTime")


def _await_later(reply: Any, started: float) -> Any:
    # Returned from the worker thread; the registry awaits it on its loop.
    async def finish() -> CheckResult:
        return _ping_result(await reply, time.perf_counter() - started)

    return finish()


def database_check(
    engine: Engine | AsyncEngine, *, name: str = "database", query: str = "SELECT 1"
) -> Check:
    """The database answers ``query`` (default ``SELECT 1``) on a pooled connection.

    ``engine`` is a SQLAlchemy ``Engine`` (run on the thread pool) or ``AsyncEngine`` (on the
    loop). Set the pool and connect timeouts on the engine (fender's ``db`` module does): they
    bound the thread. Observed value: round trip in ms (``<name>:responseTime``).
    """
    from sqlalchemy import text

    statement = text(query)
    if hasattr(engine, "sync_engine"):
        async_engine: Any = engine

        async def database_async() -> CheckResult:
            started = time.perf_counter()
            async with async_engine.connect() as connection:
                await connection.execute(statement)
            return _ping_result(True, time.perf_counter() - started)  # noqa: FBT003  (a reply, not a flag)

        func: Callable[[], Any] = database_async
    else:
        sync_engine: Any = engine

        def database_sync() -> CheckResult:
            started = time.perf_counter()
            with sync_engine.connect() as connection:
                connection.execute(statement)
            return _ping_result(True, time.perf_counter() - started)  # noqa: FBT003  (a reply, not a flag)

        func = database_sync
    return Check(name=name, func=func, component_type="datastore", measurement="responseTime")


def celery_check(app: Any, *, name: str = "celery", timeout: float = 1.0) -> Check:
    """The Celery broker is reachable and at least one worker answers a broadcast ping.

    Each within ``timeout`` seconds; the output says which of the two failed. Non-critical by
    default: dead workers delay background jobs; the web tier still serves. Observed value:
    the number of workers that replied.

    Raises:
        ConfigurationError: celery is not installed.
    """
    try:
        # By name, so that type checking does not need celery installed.
        importlib.import_module("celery")
    except ImportError:
        raise ConfigurationError(
            "celery", "not installed", "the celery package (pip install celery)"
        ) from None
    if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
        raise ConfigurationError("timeout", timeout, "seconds > 0")

    def celery_ping() -> CheckResult:
        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=timeout)
        except Exception as exc:  # any transport error: the broker is not there
            return CheckResult(Status.FAIL, f"broker unreachable ({type(exc).__name__})")
        replies = app.control.ping(timeout=timeout) or []
        if not replies:
            return CheckResult(Status.FAIL, f"broker up, no worker replied within {timeout:g}s")
        return CheckResult(Status.PASS, observed_value=len(replies), observed_unit="workers")

    return Check(
        name=name,
        func=celery_ping,
        critical=False,
        # the broker probe and the ping each take up to ``timeout``: room to report them
        timeout=2 * timeout + 1.0,
        component_type="component",
        measurement="workers",
    )
