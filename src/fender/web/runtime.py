"""What fender builds once per application: settings, observer, endpoints, health, lifecycle.

Start-up (the ASGI lifespan, or at once for WSGI): the app's hooks run, the health refresher
starts, and the process turns READY once the critical readiness checks pass (a non-critical
dependency that is down never blocks the boot). Shutdown: STOPPED, refresher and monitors
stopped, hooks in reverse order, each contained.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fender._status import Status
from fender.health import HealthConfig, HealthRegistry, Kind, declared, disk_check, memory_check
from fender.observability import metrics
from fender.observability.breakers import instrument as instrument_breakers
from fender.observability.logging import (
    adopt_loggers,
    configure_logging,
    get_logger,
    logging_configured,
)
from fender.ratelimit.config import RateLimitConfig
from fender.ratelimit.limiter import AsyncTieredLimiter, TieredLimiter
from fender.resilience import default_registry as default_breakers
from fender.runtime.drain import server_started_at
from fender.runtime.lifecycle import Lifecycle, State
from fender.settings import Settings, load_settings
from fender.stores.redis import (
    AsyncResilientRedis,
    ResilientRedis,
    async_resilient_redis,
    resilient_redis,
    store_health_check,
)
from fender.web.endpoints import Endpoints, metrics_endpoint
from fender.web.health import HealthEndpoints
from fender.web.observe import Observer

__all__ = ["Hook", "Runtime", "build_runtime"]

Hook = Callable[[], Awaitable[None] | None]
# Settings by which a test asks for rate limits in testing mode (see Runtime).
_ASKED_FOR_LIMITS: frozenset[str] = frozenset(
    {"rate_limit_enabled", "rate_limit", "rate_limit_paths"}
)
_logger = get_logger("fender")
DRAIN_POLL_SECONDS = 0.5


class Runtime:
    """fender's state for one application, built from validated settings at start-up."""

    def __init__(
        self,
        settings: Settings,
        *,
        logging: bool = True,
        framework: str = "asgi",
        asynchronous: bool = True,
        app: object = None,
        app_testing: bool = False,
    ) -> None:
        """Validate ``settings`` for production, configure logging, declare metrics.

        ``asynchronous`` (ASGI) picks the asyncio Redis store; WSGI gets the threaded one.
        ``app``, when given, is judged too: the secret and debug flag it really uses (see
        :mod:`fender.web.appcheck`), again at start-up. ``app_testing``: the framework's own
        testing mode (Flask's ``app.testing``).

        In testing mode (:meth:`~fender.settings.Settings.testing_mode`) rate limits are off,
        ``@rate_limit`` marks included, unless the test asks for them (FENDER_RATE_LIMIT_ENABLED,
        FENDER_RATE_LIMIT or FENDER_RATE_LIMIT_PATHS set, or the options): a test suite's client
        makes hundreds of requests from one address, and logs in more often than a user.
        """
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        settings = self._judge(settings, logging=logging, app=app, app_testing=app_testing)
        self.settings = settings
        self.framework = framework
        self.rate_limit = RateLimitConfig.from_settings(settings)
        proxies = bool(settings.trusted_proxies) or bool(settings.trusted_hops)
        # One resolver of client addresses (trusted proxies) for logs, limits and admin CIDRs.
        self.client_ips = self.rate_limit.resolver if proxies else None
        self.observer = Observer(settings, self.client_ips)
        self.endpoints = Endpoints()
        if settings.metrics_enabled:
            self.endpoints.add(
                settings.metrics_path, metrics_endpoint, setting="FENDER_METRICS_PATH"
            )
        metrics.set_build_info(settings.release, settings.commit)
        self.lifecycle = Lifecycle()
        self.lifecycle.add_listener(_report_transition)
        _report_transition(State.STARTING, State.STARTING, "built")
        self.health = HealthRegistry(
            HealthConfig(
                deadline=settings.health_deadline, refresh_interval=settings.health_interval
            )
        )
        self._declared_added: set[int] = set()
        self._add_builtin_checks()
        self._add_declared_checks()
        # Weakly: the registry's threads must never keep a dropped app's runtime alive.
        ready_ref = weakref.WeakMethod(self._maybe_ready)
        self.health.add_listener(lambda _outcome: _call_weak(ready_ref))
        self.breakers = default_breakers
        instrument_breakers(self.breakers)
        self.redis: ResilientRedis | AsyncResilientRedis = (
            async_resilient_redis(settings) if asynchronous else resilient_redis(settings)
        )
        """The resilient Redis store (the in-memory tier alone without REDIS_URL)."""
        if settings.redis_url:
            self.health.add(store_health_check(self.redis), timeout=settings.health_timeout)
        self.limiter: TieredLimiter | AsyncTieredLimiter = (
            AsyncTieredLimiter(self.rate_limit, registry=self.breakers)
            if asynchronous
            else TieredLimiter(self.rate_limit, registry=self.breakers)
        )
        """Rate limits: Redis when REDIS_URL is set, memory as the fallback (and alone).

        Never started when rate limiting is off: no layer, no heartbeat to Redis.
        """
        self.health_endpoints = HealthEndpoints(
            settings,
            self.health,
            self.lifecycle,
            self.breakers,
            framework=framework,
            drain_started_at=server_started_at,
            client_ips=self.rate_limit.resolver,
        )
        self.health_endpoints.add_to(self.endpoints)
        self._started_pid: int | None = None
        self._start_failed_at: float | None = None
        self._start_lock = threading.Lock()

    def _judge(
        self, settings: Settings, *, logging: bool, app: object, app_testing: bool
    ) -> Settings:
        """Set up logging, enforce the production rules; the settings to run with."""
        if logging:
            # First, so that what the checks say is in fender's format. A logging config the
            # app made since fender's (Django's LOGGING at its setup) is undone.
            if logging_configured():
                adopt_loggers()
            else:
                configure_logging(settings)
        self.testing = settings.testing_mode(app_testing)
        if self.testing and not _ASKED_FOR_LIMITS & settings.model_fields_set:
            settings = settings.model_copy(update={"rate_limit_enabled": False})
        if app is None:
            settings.require_production_ready()
            return settings
        from fender.web.appcheck import require_app_ready

        require_app_ready(app, settings)
        # What the app signs with may be set after install (a SessionMiddleware added later,
        # SECRET_KEY loaded by the factory): judged again when it starts.
        self.on_startup(functools.partial(require_app_ready, app, settings))
        return settings

    # --- hooks ----------------------------------------------------------------------------------

    def on_startup(self, hook: Hook) -> Hook:
        """Run ``hook`` (sync or async) when the server starts; returns it (a decorator)."""
        self._startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run ``hook`` at shutdown; hooks run in the reverse order of registration."""
        self._shutdown.append(hook)
        return hook

    def yield_to_app(self, app_paths: Iterable[str]) -> None:
        """Leave the app its own routes at fender's paths, and say so (``endpoint_shadowed``).

        The adapters call it with the app's fixed paths when the app is built and again when
        it starts, so that routes added after ``install`` are seen too.
        """
        for path, setting in self.endpoints.yield_to(app_paths):
            fix = (
                f"set {setting} to serve fender's endpoint elsewhere"
                if setting != "path"
                else "a fixed path: fender's endpoint is not served while the app has its own"
            )
            _logger.warning(
                "endpoint_shadowed",
                path=path,
                kept="the app's own route",
                dropped="fender's endpoint",
                fix=fix,
            )

    def yield_to_django(self) -> None:
        """Leave a wrapped Django project the paths its URLconf names itself.

        For an app fender wraps without knowing its router; now and again when it starts
        (URLconfs load lazily).
        """
        from fender.web.appcheck import django_routes_among

        def claim() -> None:
            self.yield_to_app(django_routes_among(self.endpoints.paths))

        claim()
        self.on_startup(claim)

    # --- checks ---------------------------------------------------------------------------------

    def _add_builtin_checks(self) -> None:
        settings = self.settings
        self.health.add(disk_check("/"), critical=False, kind=Kind.INFO)
        limit = settings.memory_limit_mb
        self.health.add(
            memory_check(limit_bytes=limit * 1024 * 1024 if limit else None),
            critical=False,
            kind=Kind.INFO,
        )
        if "database_url" in settings.model_fields_set or _env_set("DATABASE_URL"):
            from fender.db import database_health_check

            # Never a boot failure: a URL or driver fender cannot use is a warning on the check.
            check, close = database_health_check(settings)
            self.health.add(check, timeout=settings.health_timeout)
            self.on_shutdown(close)

        if settings.celery_broker_url:
            import importlib.util

            if importlib.util.find_spec("celery") is None:
                _logger.warning(
                    "celery_check_skipped", reason="CELERY_BROKER_URL set, celery not installed"
                )
            else:
                from celery import Celery

                from fender.health import celery_check

                app = Celery(settings.service_name, broker=settings.celery_broker_url)
                self.health.add(celery_check(app), critical=False)

    def _add_declared_checks(self) -> None:
        for func, options in declared():
            if id(func) in self._declared_added:
                continue
            self._declared_added.add(id(func))
            self.health.add(func, **{"timeout": self.settings.health_timeout, **options})

    def _maybe_ready(self) -> None:
        """STARTING -> READY once the critical readiness checks all have a passing result."""
        if self.lifecycle.state is not State.STARTING or not self._started:
            return
        report = self.health.snapshot(kind=Kind.READINESS)
        if report.status is not Status.FAIL:
            self.lifecycle.mark_ready("critical readiness checks pass")

    _started = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def _run_startup_hooks(self) -> None:
        for hook in self._startup:
            await _call(hook)
        # Servers and apps may configure logging after install (uvicorn.run(app), a
        # dictConfig in a hook): fender's handler is the one output again.
        adopt_loggers()
        self._add_declared_checks()
        self._started = True

    def _begin_again(self) -> None:
        """Start once more after a shutdown (a test client opened twice on the same app).

        Everything a start builds is built again from scratch: STARTING, no readiness, and
        rate-limit counts of the earlier run forgotten.
        """
        if self.lifecycle.state is not State.STOPPED:
            return
        self.lifecycle.restart()
        self._started = False
        self.limiter.core.reopen()

    async def startup(self) -> None:
        """Run the startup hooks in order (a failing hook fails the start), then go READY."""
        self._begin_again()
        if isinstance(self.limiter, AsyncTieredLimiter) and self.rate_limit.enabled:
            await self.limiter.start()
        await self._run_startup_hooks()
        self.health_endpoints.loop.start()
        self.health.start()
        self._started_with(await self.health.run(kind=Kind.READINESS))

    async def _close_limiter(self) -> None:
        if isinstance(self.limiter, AsyncTieredLimiter):
            await self.limiter.aclose()
        else:
            self.limiter.stop()

    async def _close_redis(self) -> None:
        if isinstance(self.redis, AsyncResilientRedis):
            await self.redis.aclose()
        else:
            self.redis.close()

    def ensure_started(self) -> bool:
        """For WSGI, which has no lifespan: start in this process, once (first request).

        Lazily, not when the app is built: under ``gunicorn --preload`` the app is built in the
        master, and threads started there do not survive the fork into the workers. The
        check is one ``getpid()`` per request.

        Returns False while the start has failed: a startup hook raised (logged, with its
        traceback). The whole start is tried again by the first request after
        FENDER_HEALTH_INTERVAL seconds; until then the app is not served.
        """
        pid = os.getpid()
        if self._started_pid == pid:
            return True
        with self._start_lock:
            if self._started_pid == pid:
                return True
            failed_at = self._start_failed_at
            if (
                failed_at is not None
                and time.monotonic() - failed_at < self.settings.health_interval
            ):
                return False
            try:
                self.start_sync()
            except Exception as exc:
                self._start_failed_at = time.monotonic()
                self.lifecycle.broken = f"startup failed ({type(exc).__name__})"
                _logger.exception("startup_failed", retry_in_s=self.settings.health_interval)
                return False
            self._started_pid = pid
            self._start_failed_at = None
            self.lifecycle.broken = None
            return True

    def start_sync(self) -> None:
        """Start now, shut down at interpreter exit (see :meth:`ensure_started`).

        Does not wait for the checks: the health refresher (on the registry's own loop
        thread) runs them at once, and the process turns READY when the critical readiness
        checks pass; with none, at once.
        """
        # All of it off a running event loop (an async test calling Flask's test client):
        # the hooks need asyncio.run(), and the health refresher must go to the registry's
        # own loop, not to a loop that ends with the test.
        _off_the_loop(self._start_sync)

    def _start_sync(self) -> None:
        self._begin_again()
        asyncio.run(self._run_startup_hooks())
        if isinstance(self.limiter, TieredLimiter) and self.rate_limit.enabled:
            self.limiter.start()
        self.health.start()
        if not self.health.select(kind=Kind.READINESS):
            self.lifecycle.mark_ready("startup complete")
        self._watch_drain()
        _logger.info("fender_started", service=self.settings.service_name, env=self.settings.env)
        _shut_down_at_exit(self)

    def shutdown_sync(self) -> None:
        """Blocking :meth:`shutdown` (WSGI, at interpreter exit)."""
        _off_the_loop(lambda: asyncio.run(self.shutdown()))
        self._started_pid = None  # used again, it starts again

    def _started_with(self, report: Any) -> None:
        if report.status is not Status.FAIL:
            self.lifecycle.mark_ready("startup complete")
        else:
            failing = [n for n, o in report.checks.items() if o.status is Status.FAIL]
            _logger.warning(
                "not_ready", failing=failing, retry_every_s=self.settings.health_interval
            )
        self._watch_drain()
        _logger.info(
            "fender_started",
            service=self.settings.service_name,
            env=self.settings.env,
            state=str(self.lifecycle.state),
            endpoints=list(self.endpoints.paths),
            multiprocess_metrics=metrics.multiprocess_dir() is not None,
        )

    async def shutdown(self) -> None:
        """STOPPED; stop the refresher; run the shutdown hooks in reverse, each contained."""
        self.lifecycle.stop("shutdown")
        _DRAIN_WATCH.forget(self)
        _AT_EXIT.discard(self)
        await self.health_endpoints.loop.stop()
        try:
            await self.health.aclose()
        except Exception:
            _logger.exception("shutdown_hook_failed", hook="health.aclose")
        cap = self.settings.shutdown_hook_timeout
        for hook in [*reversed(self._shutdown), self._close_limiter, self._close_redis]:
            try:
                await _call_capped(hook, cap)
            except TimeoutError:
                _logger.error("shutdown_hook_timeout", hook=_name(hook), timeout_s=cap)  # noqa: TRY400  (no traceback: it did not fail, it overran)
            except Exception:
                _logger.exception("shutdown_hook_failed", hook=_name(hook))
        _logger.info("fender_stopped", service=self.settings.service_name)

    def _watch_drain(self) -> None:
        """Poll the drain flag, so every worker turns DRAINING (and closes connections)."""
        _DRAIN_WATCH.watch(self)

    def poll_drain(self) -> bool:
        """One look at the drain flag; False once there is nothing more to watch for."""
        if self.lifecycle.draining:  # draining or stopped already
            return False
        self.health_endpoints.refresh_drain()
        return not self.lifecycle.draining


class _DrainWatch:
    """One thread per process polls the drain flag for every started app.

    Shared, and holding the apps weakly: an app factory called once per test must not leave a
    thread behind per app. A fork (gunicorn workers) starts its own thread on first use.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()
        self._pid: int | None = None
        self._never = threading.Event()  # waited on for the poll interval; never set

    def watch(self, runtime: Runtime) -> None:
        with self._lock:
            self._runtimes.add(runtime)
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="fender-drain-watch", daemon=True).start()

    def forget(self, runtime: Runtime) -> None:
        with self._lock:
            self._runtimes.discard(runtime)

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            self._never.wait(DRAIN_POLL_SECONDS)
            self._poll_all()

    def _poll_all(self) -> None:
        # A frame of its own: no runtime stays referenced by this thread between polls.
        with self._lock:
            runtimes = list(self._runtimes)
        for runtime in runtimes:
            try:
                watching = runtime.poll_drain()
            except Exception:
                _logger.exception("drain_watch_failed")
                watching = True
            if not watching:
                self.forget(runtime)


_DRAIN_WATCH = _DrainWatch()
_AT_EXIT: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _shut_down_at_exit(runtime: Runtime) -> None:
    """Shut ``runtime`` down at interpreter exit (WSGI has no lifespan), if it is still alive.

    One atexit hook per process, holding the runtimes weakly: a hook per app would keep
    every app a test suite ever built alive until exit.
    """
    if not _AT_EXIT:
        import atexit

        atexit.unregister(_shut_down_all)
        atexit.register(_shut_down_all)
    _AT_EXIT.add(runtime)


def _shut_down_all() -> None:
    for runtime in list(_AT_EXIT):
        runtime.shutdown_sync()


def _off_the_loop(function: Callable[[], None]) -> None:
    """Call ``function`` here, or on a thread of its own when this thread's event loop runs.

    ``asyncio.run()`` refuses a thread whose event loop is running (an async test calling
    Flask's test client, a notebook), and what starts there must not land on that loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        function()
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            function()
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="fender-start", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _call_weak(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


def _env_set(name: str) -> bool:
    import os

    return bool(os.environ.get(name))


def _report_transition(old: State, new: State, reason: str) -> None:
    # Declared on first use, not at import: gunicorn's master imports fender (through
    # gunicorn_conf) before it knows the multiprocess directory.
    metrics.gauge(
        "fender_lifecycle_state",
        "Lifecycle state of the process: 0 starting, 1 ready, 2 draining, 3 stopped.",
        multiprocess_mode="livemax",
    ).set(new.gauge)
    if old is new:
        return
    metrics.counter(
        "fender_lifecycle_transitions", "Lifecycle transitions.", ("from_state", "to_state")
    ).labels(str(old), str(new)).inc()
    _logger.info("lifecycle", from_state=str(old), to_state=str(new), reason=reason)


async def _call(hook: Hook) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


async def _call_capped(hook: Hook, cap: float) -> None:
    """Run a shutdown hook for at most ``cap`` seconds.

    One stuck close must not eat the whole graceful period. A sync hook runs in a daemon
    thread of its own, left behind if it overruns: in the loop's default executor it would
    hold up the loop's own shutdown.
    """
    if inspect.iscoroutinefunction(hook):
        await asyncio.wait_for(_call(hook), cap)
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():
            outcome()

    def run() -> None:
        try:
            result = hook()
        except BaseException as exc:  # handed to the awaiting coroutine
            report: Callable[[], None] = functools.partial(done.set_exception, exc)
        else:
            report = functools.partial(done.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, report)

    threading.Thread(target=run, name="fender-shutdown-hook", daemon=True).start()
    result = await asyncio.wait_for(done, cap)
    if inspect.isawaitable(result):
        await asyncio.wait_for(result, cap)


def _name(hook: Any) -> str:
    return str(getattr(hook, "__qualname__", repr(hook)))


def build_runtime(
    settings: Settings | None = None,
    *,
    framework: str = "asgi",
    asynchronous: bool = True,
    app: object = None,
    app_testing: bool = False,
    **overrides: Any,
) -> Runtime:
    """A :class:`Runtime` from ``settings`` (default: the environment) with field overrides.

    Raises:
        ConfigurationError: a bad setting or override, or a production rule broken.
    """
    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        # Only the fields that were set: a default must not look configured (DATABASE_URL).
        given = settings.model_dump(exclude_unset=True)
        if settings.testing_mode():  # read from the environment they came from: keep it
            given.setdefault("testing", True)
        settings = load_settings({}, env_file=None, **{**given, **overrides})
    return Runtime(
        settings,
        framework=framework,
        asynchronous=asynchronous,
        app=app,
        app_testing=app_testing,
    )
