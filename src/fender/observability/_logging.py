"""Structured logs: one format for the whole service, and the request's id on every line.

:func:`configure_logging` routes structlog, the stdlib (third-party libraries), gunicorn,
uvicorn and Python warnings through one renderer: JSON lines in production or when the output
is not a terminal, colored console lines in development. Each line is written with a single
``write`` so lines of gunicorn's many workers never interleave.

One line per event: console handlers that frameworks attach to loggers whose records reach
fender's handler anyway (Flask's ``default_handler``, Django's ``console``) are removed, and the
servers' access lines stay off (unless FENDER_SERVER_ACCESS_LOG) even when an app's logging
config turns them back on. :func:`adopt_loggers` does it again after such a config.

Levels: LOG_LEVEL is the level of fender's handler and of its own ``fender`` loggers. The root
logger's level is set too, unless the app or a test (``caplog.set_level``) chose it: theirs wins.

The request context (request id, W3C ``traceparent``) lives in one contextvar, bound by the
middleware for the duration of a request and added to every event logged meanwhile.

The access line is the one event on the hot path: :class:`AccessLog` renders it with one
``orjson.dumps`` instead of the whole processor chain (about 3x cheaper), after the same context
processors as every other event, so that it carries the same fields (what the app bound with
``structlog.contextvars``, the trace) in production as in development.

Every event passes the :class:`~fender.observability._redaction.Redactor` (FENDER_LOG_REDACT,
on by default) after its traceback became text and before it is rendered; the access line masks
its client-chosen fields and what the context added the same way. With FENDER_LOG_FILE the
lines also go to a file rotated by size, shared safely by gunicorn's workers
(:mod:`fender.observability._logfile`).

A failure is logged once: the middleware logs an exception with the request's id and marks it
(:func:`mark_logged`) before handing it on to the server, and the servers' own record of that
same exception ("Exception in ASGI application", "Error handling request"), which carries no
request id, is dropped.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, Final, NamedTuple, ParamSpec, TypeVar, overload

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from fender.observability._logoutput import LineHandler, both, formatter, line_writer, plain_text
from fender.observability._redaction import Redactor
from fender.settings import Settings

if TYPE_CHECKING:
    from fender.observability._logfile import RotatingFile

__all__ = [
    "REQUEST_CONTEXT",
    "AccessLog",
    "RequestContext",
    "access_log",
    "add_request_context",
    "adopt_loggers",
    "bind_request",
    "configure_logging",
    "current_request",
    "get_logger",
    "is_logged",
    "log_performance",
    "logging_configured",
    "mark_logged",
    "merge_bound_contextvars",
    "reset_request",
]

P = ParamSpec("P")
R = TypeVar("R")

# Loggers of the servers; their records go through our handler (propagate to root).
SERVER_LOGGERS: Final = ("gunicorn", "gunicorn.error", "uvicorn", "uvicorn.error", "uvicorn.asgi")
# Per-request lines of the servers: ours replace them, unless FENDER_SERVER_ACCESS_LOG is on.
SERVER_ACCESS_LOGGERS: Final = ("gunicorn.access", "uvicorn.access")
_LOGGED: Final = "_fender_logged"  # attribute set on an exception fender has logged


def mark_logged(exc: BaseException) -> None:
    """Note that ``exc`` is logged (with its traceback and the request id), before re-raising it.

    The servers' records of the same exception object are then dropped (see the module).
    """
    # Every exception instance takes attributes (BaseException has a __dict__); a C type
    # that refused would only mean one more line in the log.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _LOGGED, True)


def is_logged(exc: BaseException | None) -> bool:
    """True when :func:`mark_logged` marked ``exc``."""
    return exc is not None and getattr(exc, _LOGGED, False) is True


class _Gate(logging.Filter):
    """The filter of fender's handler: LOG_LEVEL, and no second record of a logged failure.

    The level is a filter, not the handler's level: Flask adds its own console handler to an
    app's logger when no handler on the logger's chain takes the logger's level (a debug app's
    DEBUG); fender's handler takes them all, so Flask never adds one.
    """

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        exc_info = record.exc_info
        if not exc_info or not record.name.startswith(("gunicorn", "uvicorn")):
            return True
        # A server's record of an exception fender already logged (it lacks the request id).
        return not is_logged(exc_info[1])


class _ServerAccessGate(logging.Filter):
    """On the servers' access loggers: their lines pass only with FENDER_SERVER_ACCESS_LOG.

    A filter on the logger rather than its ``disabled`` flag or handlers: ``dictConfig`` (an
    app's logging config, uvicorn's own) resets those and keeps filters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.enabled = False

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: ARG002  (the same for all)
        return self.enabled


_server_access = _ServerAccessGate()


class RequestContext(NamedTuple):
    """What identifies the current request in logs (a tuple: built on every request)."""

    request_id: str
    trace_id: str | None = None
    span_id: str | None = None


_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "fender_request", default=None
)


REQUEST_CONTEXT: Final = _request
"""The context variable itself, for the request path (``set``/``reset`` without a wrapper call)."""


def bind_request(context: RequestContext) -> contextvars.Token[RequestContext | None]:
    """Make ``context`` current; pass the token to :func:`reset_request` when the request ends."""
    return _request.set(context)


def reset_request(token: contextvars.Token[RequestContext | None]) -> None:
    """Restore the context that was current before :func:`bind_request`."""
    _request.reset(token)


def current_request() -> RequestContext | None:
    """The context of the request being served, or None outside a request."""
    return _request.get()


# The variable structlog.contextvars keeps for each name ever bound (structlog_<name>), or None
# if a structlog version has no such registry: then its own merge_contextvars runs instead.
_STRUCTLOG_VARS: Final[dict[str, contextvars.ContextVar[Any]] | None] = getattr(
    structlog.contextvars, "_CONTEXT_VARS", None
)
_PREFIX_LEN: Final = len(structlog.contextvars.STRUCTLOG_KEY_PREFIX)


def merge_bound_contextvars(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: ``structlog.contextvars.merge_contextvars``, at a lookup per name bound.

    structlog's copies the whole context and scans every variable in it (the server's, the
    framework's, ours) on each event; this reads only the variables structlog made, none when
    the app never bound any: the access line's common case. The same keys, values and
    precedence (an event's own fields win).
    """
    bound = _STRUCTLOG_VARS
    if bound is None:
        return structlog.contextvars.merge_contextvars(logger, method, event_dict)
    if bound:
        # (a snapshot: another thread binding a new name grows the dict meanwhile)
        for name, var in tuple(bound.items()):
            value = var.get(Ellipsis)
            if value is not Ellipsis:
                event_dict.setdefault(name[_PREFIX_LEN:], value)
    return event_dict


def add_request_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: add ``request_id`` (and ``trace_id``, ``span_id``) when in a request."""
    context = _request.get()
    if context is not None:
        event_dict.setdefault("request_id", context.request_id)
        if context.trace_id is not None:
            event_dict.setdefault("trace_id", context.trace_id)
            event_dict.setdefault("span_id", context.span_id)
    return event_dict


class _IsoTime:
    """ISO 8601 UTC timestamps with millisecond precision, the date part cached per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        second, millisecond = divmod(int(time.time() * 1000), 1000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._prefix + _MILLISECONDS[millisecond]


_MILLISECONDS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))


class AccessLog:
    """Writes the one access event per request, rendered straight to a JSON line.

    In console mode (development) it logs through structlog instead, for colors. One object
    per process, reconfigured in place by :func:`configure_logging`, so callers may keep it.
    """

    __slots__ = ("_context", "_json", "_now", "_redactor", "_write", "enabled")

    def __init__(
        self,
        write: Callable[[bytes], None] | None,
        *,
        enabled: bool = True,
        json: bool = True,
        context: Sequence[Processor] = (),
        redactor: Redactor | None = None,
    ) -> None:
        """Write JSON lines with ``write``; ``json=False`` logs through structlog.

        ``context``: the processors adding context to every event (bound contextvars, the
        request's trace), run on each JSON line too, after its own fields (which win).
        ``redactor``: masks the client-chosen fields and whatever the context added.
        """
        self._now = _IsoTime()
        self.configure(write, enabled=enabled, json=json, context=context, redactor=redactor)

    def configure(
        self,
        write: Callable[[bytes], None] | None,
        *,
        enabled: bool = True,
        json: bool = True,
        context: Sequence[Processor] = (),
        redactor: Redactor | None = None,
    ) -> None:
        """Write with ``write`` from now on (see the constructor)."""
        self._write = write
        self._json = json and write is not None
        self._context = tuple(context)
        self._redactor = redactor
        self.enabled = enabled

    def request(  # noqa: PLR0917  (the access event's fields, positional on the hot path)
        self,
        request_id: str | None,
        method: str,
        route: str,
        status: int,
        duration_ms: float,
        response_bytes: int,
        client: str | None,
        user_agent: str | None,
        error: str | None = None,
    ) -> None:
        """Log one request; ``error`` (what failed while serving it) is a field only when set."""
        if not self.enabled:
            return
        if self._json and self._write is not None:
            redactor = self._redactor
            if redactor is not None:
                # Remembered per text: routes and user agents repeat, so this is a lookup.
                route = redactor.cached(route)
                if user_agent is not None:
                    user_agent = redactor.cached(user_agent)
                if client is not None:
                    client = redactor.cached(client)
            event: dict[str, Any] = {
                "timestamp": self._now(),
                "level": "info",
                "logger": "fender.access",
                "event": "request",
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "bytes": response_bytes,
                "client": client,
                "user_agent": user_agent,
            }
            if error is not None:
                event["error"] = error
            own = len(event)
            for processor in self._context:
                event = processor(None, "info", event)  # type: ignore[assignment]
            if redactor is not None and len(event) > own:  # the app bound some context
                redactor.fields(event, _ACCESS_FIELDS)
            try:
                self._write(orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE))
            except OSError:
                # stdout gone (closed pipe, EAGAIN on a non-blocking fd): a log line is not
                # worth a failed request.
                return
        else:
            fields: dict[str, Any] = {} if error is None else {"error": error}
            get_logger("fender.access").info(
                "request",
                request_id=request_id,
                method=method,
                route=route,
                status=status,
                duration_ms=duration_ms,
                bytes=response_bytes,
                client=client,
                user_agent=user_agent,
                **fields,
            )


# The access event's own fields: fixed, or masked before the event is built.
_ACCESS_FIELDS: Final = frozenset(
    {
        "timestamp", "level", "logger", "event", "request_id", "method", "route", "status",
        "duration_ms", "bytes", "client", "user_agent", "error", "trace_id", "span_id",
    }
)  # fmt: skip
_access = AccessLog(None, enabled=False)
_configured_lock = threading.Lock()
_configured = False
_root_level: int | None = None  # the root level fender set last (None: never set one)
_handlers: tuple[logging.Handler, ...] = ()  # fender's handlers on the root logger
_log_file: RotatingFile | None = None  # FENDER_LOG_FILE, open
_showwarning: Callable[..., None] | None = None  # warnings.showwarning as capture left it


def logging_configured() -> bool:
    """True once :func:`configure_logging` has run in this process."""
    return _configured


def access_log() -> AccessLog:
    """The access log :func:`configure_logging` set up (disabled until it runs)."""
    return _access


def get_logger(name: str) -> Any:
    """A structlog logger named ``name`` (the stdlib logger name, for levels and filters)."""
    return structlog.stdlib.get_logger(name)


def _is_console(handler: logging.Handler) -> bool:
    """True for a plain StreamHandler writing to stdout or stderr.

    Flask's ``default_handler`` writes to a proxy of ``sys.stderr``, equal to it, not it.
    """
    if type(handler) is not logging.StreamHandler:
        return False
    stream = handler.stream
    consoles = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    try:
        return stream in consoles or stream.fileno() in {1, 2}
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False


def _reaches_root(logger: logging.Logger) -> bool:
    current = logger
    while current.propagate and current.parent is not None:
        current = current.parent
    return current is logging.root


def _adopt(*, server_access_log: bool) -> None:
    """Leave fender's handler on the root logger the one console output (see the module)."""
    root = logging.getLogger()
    # Console handlers on the root (logging.basicConfig's, a dictConfig's "root" entry such as
    # Django's LOGGING) print every line twice, or fender's events as dicts once they replace
    # fender's handler. Others (pytest's capture, Sentry) stay.
    for handler in [h for h in root.handlers if _is_console(h)]:
        root.removeHandler(handler)
    for handler in _handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
        server_logger.setLevel(logging.NOTSET)
    _server_access.enabled = server_access_log
    for name in SERVER_ACCESS_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
        server_logger.disabled = False
        server_logger.addFilter(_server_access)  # (once: addFilter skips a filter it has)
    # (A copy: a PlaceHolder is no logger, and another thread may add loggers meanwhile.)
    for logger in list(logging.root.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger) or not logger.handlers:
            continue
        # Its records reach fender's handler anyway: its own console handler prints them twice.
        if _reaches_root(logger):
            for handler in [h for h in logger.handlers if _is_console(h)]:
                logger.removeHandler(handler)


def _capture_warnings() -> None:
    """Send Python warnings to the ``py.warnings`` logger, hence fender's format.

    Done again when ``warnings.showwarning`` was replaced since (``warnings.catch_warnings``
    restores the one before it on exit; pytest does so around each test).
    """
    global _showwarning  # noqa: PLW0603  (one capture per process)
    if warnings.showwarning is not _showwarning:
        logging.captureWarnings(capture=False)  # forget an earlier capture's stale original
        logging.captureWarnings(capture=True)
        _showwarning = warnings.showwarning


def adopt_loggers() -> None:
    """Make fender's handler the one output again, after a later logging config.

    A server or an app configuring logging after fender (``uvicorn.run(app)`` with an app
    already built, Django's setup, a ``dictConfig`` in a startup hook) gives loggers console
    handlers of their own: each event would print twice, or outside fender's format. This
    removes those that duplicate fender's lines and hands the servers' loggers back. Does
    nothing before :func:`configure_logging`.
    """
    with _configured_lock:
        if _configured:
            _adopt(server_access_log=_server_access.enabled)


def _line_handler(
    write: Callable[[bytes], None], line_formatter: logging.Formatter, level: int
) -> logging.Handler:
    handler = LineHandler(write)
    handler.setFormatter(line_formatter)
    handler.addFilter(_Gate(level))
    return handler


def configure_logging(
    settings: Settings | None = None,
    *,
    level: str | None = None,
    fmt: str | None = None,
    stream: IO[str] | IO[bytes] | None = None,
) -> None:
    """Send structlog, stdlib, gunicorn, uvicorn and warnings records through one renderer.

    Args:
        settings: read for LOG_LEVEL, FENDER_LOG_FORMAT, FENDER_ACCESS_LOG, FENDER_LOG_REDACT*,
            FENDER_LOG_ANONYMIZE_IP, FENDER_LOG_FILE* and the environment (loaded from the
            environment when omitted).
        level: overrides LOG_LEVEL.
        fmt: ``"json"`` or ``"console"``; overrides FENDER_LOG_FORMAT. ``auto`` means JSON in
            production or when ``stream`` is not a terminal.
        stream: where lines go (default ``sys.stdout``).

    Calling it again replaces the previous configuration (and closes the previous log file).
    The root logger's level is left alone when someone else set it (see the module).

    Raises:
        ConfigurationError: FENDER_LOG_FILE cannot be written (see
            :func:`~fender.observability._logfile.open_log_file`).
    """
    global _configured, _root_level, _handlers, _log_file  # noqa: PLW0603  (one logging configuration per process)
    if settings is None:
        from fender.settings import load_settings

        settings = load_settings()
    out = stream if stream is not None else sys.stdout
    level_no = logging.getLevelNamesMapping()[(level or settings.log_level).upper()]
    chosen = fmt or settings.log_format
    if chosen == "auto":
        interactive = bool(getattr(out, "isatty", lambda: False)())
        chosen = "json" if settings.is_production or not interactive else "console"
    json = chosen == "json"

    # What every event carries, the access line's fast path included.
    context: list[Processor] = [merge_bound_contextvars, add_request_context]
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")
    shared: list[Processor] = [
        *context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    redactor = Redactor.from_settings(settings)
    log_file = None
    if settings.log_file:
        from fender.observability._logfile import open_log_file  # (fcntl: only when asked)

        log_file = open_log_file(settings)
    foreign: list[Processor] = [*shared, structlog.stdlib.ExtraAdder(), plain_text]
    write = line_writer(out)
    if json and log_file is not None:
        write = both(write, log_file.write)
    handlers = [_line_handler(write, formatter(foreign, redactor, json=json), level_no)]
    if not json and log_file is not None:  # colors are for a terminal: the file gets JSON
        handlers.append(_line_handler(log_file.write, formatter(foreign, redactor), level_no))

    with _configured_lock:
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                *shared,
                structlog.processors.StackInfoRenderer(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
        root = logging.getLogger()
        for old in [h for h in root.handlers if isinstance(h, LineHandler)]:
            root.removeHandler(old)  # ours, from an earlier call
        _handlers = tuple(handlers)  # installed on the root by _adopt() below
        # The default level, or the one fender set: else the app's or a test's, which wins.
        if root.level in {logging.WARNING, _root_level}:
            root.setLevel(level_no)
            _root_level = level_no
        logging.getLogger("fender").setLevel(level_no)
        _adopt(server_access_log=settings.server_access_log)
        _capture_warnings()
        _access.configure(
            write, enabled=level_no <= logging.INFO, json=json, context=context, redactor=redactor
        )
        _configured = True
        previous, _log_file = _log_file, log_file
    if previous is not None:
        previous.close()  # (a write racing this one is dropped: the file says closed)


class _Timed:
    """Times a block and logs it: the one implementation behind :func:`log_performance`."""

    __slots__ = ("_logger", "_name", "_start", "_threshold_ms")

    def __init__(self, name: str, threshold_ms: float) -> None:
        self._name = name
        self._threshold_ms = threshold_ms
        self._logger = get_logger("fender.performance")
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, exc_type: object, *_: object) -> None:
        duration_ms = round((time.perf_counter() - self._start) * 1000, 3)
        failed = exc_type is not None
        if duration_ms > self._threshold_ms:
            self._logger.warning(
                "slow_call",
                function=self._name,
                duration_ms=duration_ms,
                threshold_ms=self._threshold_ms,
                failed=failed,
            )
        else:
            self._logger.info(
                "performance", function=self._name, duration_ms=duration_ms, failed=failed
            )


@overload
def log_performance(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def log_performance(
    *, threshold_ms: float = ..., name: str | None = ...
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def log_performance(
    func: Callable[P, R] | None = None,
    /,
    *,
    threshold_ms: float = 1000.0,
    name: str | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Log a function's duration; a ``slow_call`` warning past ``threshold_ms``.

    Works on plain and ``async`` functions alike.

    Example:
        >>> @log_performance(threshold_ms=250)
        ... async def load_report(report_id: int) -> bytes: ...
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        label = name or f"{fn.__module__}.{fn.__qualname__}"
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with _Timed(label, threshold_ms):
                    return await fn(*args, **kwargs)  # type: ignore[misc,unused-ignore]

            return timed_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            with _Timed(label, threshold_ms):
                return fn(*args, **kwargs)

        return timed

    return decorate(func) if func is not None else decorate
