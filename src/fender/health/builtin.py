"""Ready-made checks that need no web framework.

Each factory returns a :class:`~fender.health.checks.Check`; register it, overriding any option:

    >>> from fender.health.registry import HealthRegistry
    >>> registry = HealthRegistry()
    >>> registry.add(disk_check("/"), critical=True).name
    'disk'

Sync probes (disk, memory, a sync Redis client, a SQLAlchemy ``Engine``, urllib, Celery) run
on the registry's thread pool; async ones (an asyncio Redis client, an ``AsyncEngine``, httpx)
on its event loop. Failures are raised or returned as results; the registry times them out and
sanitizes their messages. Heavy or optional libraries (psutil, SQLAlchemy, httpx, celery) are
imported when a factory is called, not when this module is.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Container, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health.checks import DEFAULT_TIMEOUT, Check, CheckResult, sanitize

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "SupportsPing",
    "celery_check",
    "database_check",
    "disk_check",
    "http_check",
    "memory_check",
    "redis_check",
]

_GIB = 1024**3
_MIB = 1024**2
HttpBackend = Literal["auto", "httpx", "urllib"]


class SupportsPing(Protocol):
    """Anything with ``ping()``: a redis-py client, sync or asyncio, or a stand-in."""

    def ping(self) -> object:
        """Return truthy (or an awaitable of it) when the server answers."""
        ...


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _require_ratio(field: str, value: float, upper: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= upper:
        raise ConfigurationError(field, value, f"a number from 0 to {upper:g}")


# --- system resources ---------------------------------------------------------------------------


def disk_check(
    path: str = "/",
    *,
    name: str = "disk",
    warn_below_percent: float = 10.0,
    fail_below_percent: float = 5.0,
) -> Check:
    """Free space on the filesystem holding ``path``.

    Passes above ``warn_below_percent`` free, warns below it, fails below
    ``fail_below_percent``. Observed value: used space in percent (``disk:utilization``).
    Non-critical by default: a full disk degrades most web services rather than stopping them.
    """
    _require_ratio("fail_below_percent", fail_below_percent, 100)
    _require_ratio("warn_below_percent", warn_below_percent, 100)
    if fail_below_percent > warn_below_percent:
        raise ConfigurationError(
            "fail_below_percent",
            fail_below_percent,
            f"<= warn_below_percent ({warn_below_percent})",
        )

    def disk() -> CheckResult:
        usage = shutil.disk_usage(path)
        free_percent = 100.0 * usage.free / usage.total if usage.total else 0.0
        if free_percent < fail_below_percent:
            status = Status.FAIL
        elif free_percent < warn_below_percent:
            status = Status.WARN
        else:
            status = Status.PASS
        output = (
            f"{free_percent:.1f}% free on {path} "
            f"({usage.free / _GIB:.1f} GiB of {usage.total / _GIB:.1f} GiB)"
        )
        return CheckResult(
            status,
            "" if status is Status.PASS else output,
            observed_value=round(100.0 - free_percent, 2),
            observed_unit="percent",
            details={"path": path, "free_bytes": usage.free, "total_bytes": usage.total},
        )

    return Check(
        name=name,
        func=disk,
        critical=False,
        tags=frozenset({"system"}),
        component="disk",
        component_type="system",
        measurement="utilization",
    )


def memory_check(
    *,
    limit_bytes: int | Callable[[], int | None] | None = None,
    name: str = "memory",
    warn_ratio: float = 0.85,
    fail_ratio: float = 0.95,
) -> Check:
    """This process's resident memory (RSS, via psutil) against a limit.

    Args:
        limit_bytes: the limit, or a callable returning it at each run (e.g. the container's
            cgroup limit, or ``MEMORY_LIMIT_MB`` per worker); None or a callable returning None
            means the machine's total memory.
        name: the check name.
        warn_ratio: RSS / limit from which the check warns.
        fail_ratio: RSS / limit from which it fails.

    Observed value: RSS in percent of the limit (``memory:utilization``). Non-critical by
    default: the runtime recycles a worker over its limit; health reports the pressure.
    """
    _require_ratio("warn_ratio", warn_ratio, 1)
    _require_ratio("fail_ratio", fail_ratio, 1)
    if warn_ratio > fail_ratio:
        raise ConfigurationError("warn_ratio", warn_ratio, f"<= fail_ratio ({fail_ratio})")
    if (
        limit_bytes is not None
        and not callable(limit_bytes)
        and (not isinstance(limit_bytes, int) or isinstance(limit_bytes, bool) or limit_bytes <= 0)
    ):
        raise ConfigurationError("limit_bytes", limit_bytes, "a positive number of bytes")
    import psutil

    def memory() -> CheckResult:
        # Process() per call, not per factory: under a preloading server the factory runs in
        # the master, and each forked worker must measure itself.
        rss = psutil.Process().memory_info().rss
        limit = limit_bytes() if callable(limit_bytes) else limit_bytes
        source = "limit"
        if not limit or limit <= 0:
            limit, source = psutil.virtual_memory().total, "machine"
        ratio = rss / limit
        if ratio >= fail_ratio:
            status = Status.FAIL
        elif ratio >= warn_ratio:
            status = Status.WARN
        else:
            status = Status.PASS
        output = f"RSS {rss / _MIB:.0f} MiB is {ratio:.0%} of the {source} {limit / _MIB:.0f} MiB"
        return CheckResult(
            status,
            "" if status is Status.PASS else output,
            observed_value=round(100.0 * ratio, 2),
            observed_unit="percent",
            details={"rss_bytes": rss, "limit_bytes": limit, "limit_source": source},
        )

    return Check(
        name=name,
        func=memory,
        critical=False,
        tags=frozenset({"system"}),
        component="memory",
        component_type="system",
        measurement="utilization",
    )


# --- HTTP dependency ----------------------------------------------------------------------------


def http_check(
    url: str,
    *,
    name: str | None = None,
    method: str = "GET",
    timeout: float = DEFAULT_TIMEOUT,
    expect_status: Container[int] = range(200, 400),
    headers: Mapping[str, str] | None = None,
    trust_env: bool = True,
    backend: HttpBackend = "auto",
) -> Check:
    """An HTTP dependency answers ``url`` with an expected status code.

    Redirects are not followed (a 3xx counts as an answer). The body is not read.

    Args:
        url: an ``http`` or ``https`` URL; shown nowhere (its password, if any, never is).
        name: the check name; defaults to ``http-<host>[-<port>]``.
        method: the request method.
        timeout: seconds for the request, and the check's timeout.
        expect_status: status codes that pass (default 200-399); others fail.
        headers: extra request headers (e.g. an auth header: never shown).
        trust_env: honour ``HTTP(S)_PROXY`` / ``NO_PROXY`` from the environment.
        backend: ``httpx`` (async, on the event loop) if installed, else ``urllib`` (sync, on
            the registry's thread pool); ``auto`` picks.

    Observed value: response time in ms (``<name>:responseTime``).
    """
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError("url", sanitize(url), "an http:// or https:// URL with a host")
    if name is None:
        port = f"-{parts.port}" if parts.port else ""  # a bad port raises ValueError here
        name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", f"http-{parts.hostname}{port}")[:64]
    if backend == "auto":
        backend = "httpx" if _httpx_available() else "urllib"
    if backend not in {"httpx", "urllib"}:
        raise ConfigurationError("backend", backend, "auto, httpx or urllib")
    method = method.upper()
    sent_headers = dict(headers or {})
    make = _httpx_probe if backend == "httpx" else _urllib_probe
    func = make(url, method, sent_headers, timeout, expect_status, trust_env=trust_env)
    return Check(
        name=name,
        func=func,
        timeout=timeout,
        component_type="component",
        measurement="responseTime",
    )


def _httpx_available() -> bool:
    try:
        import httpx  # noqa: F401  (probing for the optional dependency)
    except ImportError:
        return False
    return True


def _status_result(code: int, elapsed: float, expect: Container[int]) -> CheckResult:
    ok = code in expect
    return CheckResult(
        Status.PASS if ok else Status.FAIL,
        "" if ok else f"HTTP {code}",
        observed_value=_ms(elapsed),
        observed_unit="ms",
        details={"status_code": code},
    )


def _httpx_probe(
    url: str,
    method: str,
    headers: dict[str, str],
    timeout: float,
    expect: Container[int],
    *,
    trust_env: bool,
) -> Callable[[], Any]:
    import httpx

    async def http() -> CheckResult:
        # A client per call: an AsyncClient's pool is bound to the loop it first ran on, and
        # the registry may run this on the app's loop or on its own.
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=trust_env
        ) as client:
            started = time.perf_counter()
            async with client.stream(method, url, headers=headers) as response:
                return _status_result(response.status_code, time.perf_counter() - started, expect)

    return http


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # urllib then raises HTTPError carrying the 3xx: an answer, not followed


def _urllib_probe(
    url: str,
    method: str,
    headers: dict[str, str],
    timeout: float,
    expect: Container[int],
    *,
    trust_env: bool,
) -> Callable[[], Any]:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if not trust_env:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)

    def http() -> CheckResult:
        request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310  (scheme checked: http or https)
        started = time.perf_counter()
        try:
            with opener.open(request, timeout=timeout) as response:
                code = int(response.status)
        except urllib.error.HTTPError as exc:  # a 4xx/5xx/3xx is still an answer
            code = exc.code
            exc.close()
        return _status_result(code, time.perf_counter() - started, expect)

    return http


# --- data stores and workers --------------------------------------------------------------------


def _ping_result(reply: object, elapsed: float) -> CheckResult:
    if not reply:
        return CheckResult(Status.FAIL, f"ping replied {reply!r}")
    return CheckResult(Status.PASS, observed_value=_ms(elapsed), observed_unit="ms")


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
