"""Pool metrics named after OpenTelemetry's ``db.client.connection.*``, and slow queries.

Series, each labelled ``pool_name`` (``host[:port]/database``, never a user or password):

- ``db_client_connection_count{state="idle|used"}``: connections open in the pool, read from
  the pool itself after each checkout and return (sampled, so a missed event cannot drift it);
- ``db_client_connection_max``, ``db_client_connection_idle_max``: pool_size + max_overflow
  and pool_size (OpenTelemetry's ``idle.min`` has no SQLAlchemy equivalent);
- ``db_client_connection_pending_requests``: callers waiting for a connection right now;
- ``db_client_connection_wait_time_seconds``: time to obtain a connection (pre-ping and any
  new connection included), ``db_client_connection_use_time_seconds``: checkout to return;
- ``db_client_connection_timeouts_total``: DB_POOL_TIMEOUT ran out (``db_pool_timeout`` log);
- ``db_client_operation_duration_seconds`` and ``db_client_slow_queries_total``: every
  statement, and those over FENDER_SLOW_QUERY_MS (``slow_query`` log).

The counts cover QueuePool engines (servers, SQLite files); an in-memory SQLite engine has a
one-connection pool and gets the statement series only. Engines with the same pool name in one
process (a sync and an async engine of one database) are summed. Gauges are ``livesum`` under
gunicorn: the instance's total over its live workers.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from typing import Any, ClassVar, NamedTuple, cast

from sqlalchemy import Engine, event
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import Pool, PoolProxiedConnection, QueuePool
from sqlalchemy.pool.base import ConnectionPoolEntry

from fender.observability import _metrics as metrics
from fender.observability._logging import get_logger

__all__ = ["PoolMeter", "after_fork_in_child", "instrument", "meter_for", "metered_pool_class"]

STATEMENT_CHARS = 500
"""A slow statement is logged up to this many characters (never its parameters)."""
_STARTED = "fender_query_started"
_CHECKED_OUT = "fender_checked_out"
_logger = get_logger("fender.db")


class _Declared(NamedTuple):
    count: Any
    max: Any
    idle_max: Any
    pending: Any
    wait_time: Any
    use_time: Any
    timeouts: Any
    operations: Any
    slow: Any


@functools.cache
def _declared() -> _Declared:
    # At the first engine, not at import: gunicorn's master imports fender before it knows
    # the multiprocess directory.
    name = ("pool_name",)
    return _Declared(
        count=metrics.gauge(
            "db_client_connection_count",
            "Connections open in the pool, by state (idle, used).",
            ("pool_name", "state"),
        ),
        max=metrics.gauge("db_client_connection_max", "Most connections the pool may open.", name),
        idle_max=metrics.gauge(
            "db_client_connection_idle_max", "Most idle connections the pool keeps.", name
        ),
        pending=metrics.Buffered(
            metrics.gauge(
                "db_client_connection_pending_requests",
                "Callers waiting for a connection from the pool.",
                name,
            )
        ),
        wait_time=metrics.Buffered(
            metrics.histogram(
                "db_client_connection_wait_time_seconds",
                "Time it took to obtain a connection from the pool.",
                name,
            )
        ),
        use_time=metrics.Buffered(
            metrics.histogram(
                "db_client_connection_use_time_seconds",
                "Time between the checkout of a connection and its return to the pool.",
                name,
            )
        ),
        timeouts=metrics.Buffered(
            metrics.counter(
                "db_client_connection_timeouts",
                "Waits for a pool connection that ran out of DB_POOL_TIMEOUT.",
                name,
            )
        ),
        operations=metrics.Buffered(
            metrics.histogram(
                "db_client_operation_duration_seconds",
                "Duration of database statements.",
                name,
            )
        ),
        slow=metrics.Buffered(
            metrics.counter(
                "db_client_slow_queries",
                "Statements slower than FENDER_SLOW_QUERY_MS.",
                name,
            )
        ),
    )


class PoolMeter:
    """The metrics of one pool name in this process, summed over its engines."""

    def __init__(self, name: str) -> None:
        """Declare (or reuse) the series of pool ``name``."""
        declared = _declared()
        self.name = name
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._idle = declared.count.labels(name, "idle")
        self._used = declared.count.labels(name, "used")
        self._max = declared.max.labels(name)
        self._idle_max = declared.idle_max.labels(name)
        self._published: tuple[float, float, float, float] | None = None
        self.pending = declared.pending.labels(name)
        self.wait_time = declared.wait_time.labels(name)
        self.use_time = declared.use_time.labels(name)
        self.timeouts = declared.timeouts.labels(name)
        self.operations = declared.operations.labels(name)
        self.slow = declared.slow.labels(name)

    def add(self, engine: Engine) -> None:
        """Count ``engine``'s pool under this name from now on (until it is collected)."""
        with self._lock:
            self._engines.add(engine)
        self.refresh()

    def refresh(self) -> None:
        """Publish the pools' counts as they are now."""
        with self._lock:
            idle = used = most = idle_most = 0.0
            for engine in list(self._engines):
                pool = engine.pool
                if not isinstance(pool, QueuePool):
                    continue
                idle += pool.checkedin()
                used += pool.checkedout()
                size = pool.size()
                overflow = pool._max_overflow  # noqa: SLF001  (no public reader of the setting)
                idle_most += size
                most += size + overflow if overflow >= 0 else float("inf")
            values = (idle, used, most, idle_most)
            if values == self._published:
                return
            self._published = values
            self._idle.set(idle)
            self._used.set(used)
            self._max.set(most)
            self._idle_max.set(idle_most)

    def forked(self) -> None:
        """In a forked child: a fresh lock, and the child's own (empty) pools published."""
        self._lock = threading.Lock()
        self._published = None
        self.refresh()


_meters: dict[str, PoolMeter] = {}
_meters_lock = threading.Lock()


def meter_for(name: str) -> PoolMeter:
    """The one meter of pool ``name`` in this process."""
    with _meters_lock:
        meter = _meters.get(name)
        if meter is None:
            meter = _meters[name] = PoolMeter(name)
        return meter


class _MeteredPool(Pool):
    """Times the wait for a connection and samples the counts; mixed in before the pool class.

    ``connect`` is the pool's public entry (the engine calls it for every connection);
    ``_do_return_conn`` is the hook SQLAlchemy's pool classes implement, after which the
    returned connection is idle (the ``checkin`` event fires before it is).
    """

    _fender_meter: ClassVar[PoolMeter]

    def connect(self) -> PoolProxiedConnection:
        """A connection from the pool, the wait timed and a timeout counted."""
        meter = self._fender_meter
        meter.pending.inc()
        started = time.perf_counter()
        try:
            connection = super().connect()
        except PoolTimeout:
            meter.timeouts.inc()
            _logger.warning(
                "db_pool_timeout",
                pool_name=meter.name,
                waited_s=round(time.perf_counter() - started, 3),
                pool_size=self.size() if isinstance(self, QueuePool) else None,
                fix="raise DB_POOL_SIZE / DB_MAX_OVERFLOW, or hold connections for less time",
            )
            raise
        finally:
            meter.pending.dec()
            meter.refresh()
        meter.wait_time.observe(time.perf_counter() - started)
        return connection

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        # The pool class mixed in after this one implements it.
        super()._do_return_conn(record)
        self._fender_meter.refresh()


_classes: dict[tuple[type[Pool], str], type[Pool]] = {}


def metered_pool_class(base: type[Pool], meter: PoolMeter) -> type[Pool]:
    """``base`` with :class:`_MeteredPool` mixed in, reporting to ``meter``.

    A class, not an instance attribute: ``Engine.dispose()`` recreates the pool from its class.
    """
    with _meters_lock:
        key = (base, meter.name)
        found = _classes.get(key)
        if found is None:
            found = _classes[key] = cast(
                "type[Pool]",
                type(
                    f"Metered{base.__name__}",
                    (_MeteredPool, base),
                    # The module names the pool's logger: sqlalchemy.pool's, as users set it.
                    {"_fender_meter": meter, "__module__": base.__module__},
                ),
            )
        return found


def instrument(engine: Engine, meter: PoolMeter, *, slow_query_ms: float) -> None:
    """Time checkouts and statements of ``engine`` (a sync engine, or an async one's)."""
    timings = _Timings(meter, slow_query_ms)
    event.listen(engine, "checkout", timings.checkout)
    event.listen(engine, "checkin", timings.checkin)
    event.listen(engine, "before_cursor_execute", timings.before)
    event.listen(engine, "after_cursor_execute", timings.after)
    event.listen(engine, "handle_error", timings.error)
    event.listen(engine, "engine_disposed", lambda _engine: meter.refresh())
    meter.add(engine)


class _Timings:
    """The engine's event listeners: use time, statement durations, slow queries."""

    __slots__ = ("_meter", "_slow_ms", "_threshold")

    def __init__(self, meter: PoolMeter, slow_query_ms: float) -> None:
        self._meter = meter
        self._slow_ms = slow_query_ms
        self._threshold = slow_query_ms / 1000

    def checkout(self, _dbapi: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        record.info[_CHECKED_OUT] = time.perf_counter()

    def checkin(self, _dbapi: Any, record: ConnectionPoolEntry) -> None:
        started = record.info.pop(_CHECKED_OUT, None)
        if started is not None:
            self._meter.use_time.observe(time.perf_counter() - started)

    def before(self, conn: Any, *_args: Any) -> None:
        # On the connection: one statement at a time runs on it, from start to end.
        conn.info[_STARTED] = time.perf_counter()

    def after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self._finished(conn, statement, None)

    def error(self, context: Any) -> None:
        # A statement that failed (a statement_timeout, a dropped connection) may be slow too.
        if context.connection is not None:
            self._finished(context.connection, context.statement, context.original_exception)

    def _finished(self, conn: Any, statement: str | None, error: BaseException | None) -> None:
        started = conn.info.pop(_STARTED, None)
        if started is None:
            return
        seconds = time.perf_counter() - started
        self._meter.operations.observe(seconds)
        if seconds < self._threshold:
            return
        self._meter.slow.inc()
        fields: dict[str, Any] = {"error": type(error).__name__} if error is not None else {}
        _logger.warning(
            "slow_query",
            duration_ms=round(seconds * 1000, 1),
            threshold_ms=self._slow_ms,
            pool_name=self._meter.name,
            # Never the parameters: they hold the data, passwords and tokens included.
            statement=" ".join((statement or "").split())[:STATEMENT_CHARS],
            **fields,
        )


def after_fork_in_child() -> None:
    """Fresh locks in a forked child; called once its engines have dropped the parent's pools."""
    global _meters_lock  # noqa: PLW0603  (process-wide, reset in the child)
    _meters_lock = threading.Lock()
    for meter in _meters.values():
        meter.forked()
