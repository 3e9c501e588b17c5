"""What fender builds once per application: settings, observer, endpoints, health, lifecycle.

Start-up (the ASGI lifespan, or at once for WSGI): the app's hooks run, the health refresher
starts, and the process turns READY once the critical readiness checks pass (a non-critical
dependency that is down never blocks the boot). Shutdown: STOPPED, refresher and monitors
stopped, hooks in reverse order, each contained.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Generic

from fender._hooks import Hook, call, call_capped, hook_name
from fender._status import Status
from fender.app._checks import add_builtin_checks
from fender.app._flavours import Flavour, LimiterT, StoreT
from fender.app._memory import memory_plan
from fender.app._process import (
    DRAIN_WATCH,
    MONITOR_TICK,
    call_weak,
    forget_at_exit,
    off_the_loop,
    shut_down_at_exit,
)
from fender.health import HealthConfig, HealthRegistry, Kind, declared
from fender.health._metrics import HealthMetrics
from fender.http.access import Observer
from fender.http.edge import Edge
from fender.http.endpoints import Endpoints, Request
from fender.http.health import HealthEndpoints
from fender.http.metrics import MetricsEndpoint
from fender.monitor import Monitor
from fender.observability import _metrics as metrics
from fender.observability._breakers import instrument as instrument_breakers
from fender.observability._logging import (
    adopt_loggers,
    configure_logging,
    get_logger,
    logging_configured,
)
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._lease import LeaseConfig
from fender.resilience import BreakerState
from fender.resilience import default_registry as default_breakers
from fender.runtime._drain import server_started_at
from fender.runtime._fastpath import offer as offer_fast_path
from fender.runtime._lifecycle import Lifecycle, State
from fender.security import SecurityHeaders
from fender.settings import Settings
from fender.stores._health import store_health_check

__all__ = ["Runtime"]

# Settings by which a test asks for rate limits in testing mode (see Runtime).
_ASKED_FOR_LIMITS: frozenset[str] = frozenset(
    {"rate_limit_enabled", "rate_limit", "rate_limit_paths"}
)
_logger = get_logger("fender")
_LIVE_REQUEST = Request(method="GET", path="/health/live", headers={})


def _live_paths(settings: Settings) -> list[str]:
    paths = [settings.health_prefix + "/live"]
    if settings.health_aliases:
        paths.append("/livez")
    return paths


class Runtime(Generic[StoreT, LimiterT]):
    """fender's state for one application, built from validated settings at start-up."""

    def __init__(
        self,
        settings: Settings,
        *,
        flavour: Flavour[StoreT, LimiterT],
        logging: bool = True,
        framework: str = "asgi",
        app: object = None,
        app_testing: bool = False,
    ) -> None:
        """Validate ``settings`` for production, configure logging, declare metrics.

        ``flavour`` builds the I/O parts of the protocol world the app lives in (asyncio ones
        for ASGI, threaded ones for WSGI); each registers its own start and close as hooks.
        ``app``, when given, is judged too: the secret and debug flag it really uses (see
        :mod:`fender.apps`), again at start-up. ``app_testing``: the framework's own
        testing mode (Flask's ``app.testing``).

        In testing mode (:meth:`~fender.settings.Settings.testing_mode`) rate limits are off,
        ``@rate_limit`` marks included, unless the test asks for them (FENDER_RATE_LIMIT_ENABLED,
        FENDER_RATE_LIMIT or FENDER_RATE_LIMIT_PATHS set, or the options): a test suite's client
        makes hundreds of requests from one address, and logs in more often than a user.
        ``/metrics`` is rendered at every scrape there too, unless FENDER_METRICS_CACHE_SECONDS
        is set: a test reads the counts of the requests it just made.
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
        self.edge = Edge(settings, self.rate_limit.resolver)
        """The edge: head bounds, proxies, allowed hosts, HTTPS redirect, CORS, probe events."""
        self.headers = SecurityHeaders.from_settings(settings)
        """The response security headers, compiled once (FENDER_SECURITY_HEADERS, FENDER_CSP...)."""
        self.endpoints = Endpoints()
        # Versions hidden where anyone may read them: the exposition too, unless protected.
        metrics.set_build_info(
            settings.release,
            settings.commit,
            hide_versions=settings.versions_hidden and not settings.metrics_protected,
        )
        self.lifecycle = Lifecycle()
        self.lifecycle.add_listener(_report_transition)
        _report_transition(State.STARTING, State.STARTING, "built")
        self.health = HealthRegistry(
            HealthConfig(
                deadline=settings.health_deadline, refresh_interval=settings.health_interval
            )
        )
        self._declared_added: set[int] = set()
        self.memory = memory_plan(settings)
        """The container's limits and this worker's share of them (see app/_memory)."""
        add_builtin_checks(self.health, settings, self, self.memory)
        self._add_declared_checks()
        # Weakly: the registry's threads must never keep a dropped app's runtime alive.
        ready_ref = weakref.WeakMethod(self._maybe_ready)
        self.health.add_listener(lambda _outcome: call_weak(ready_ref))
        health_metrics = HealthMetrics()
        self.health.add_listener(health_metrics)
        self.breakers = default_breakers
        instrument_breakers(self.breakers)
        self.monitor = _monitor(settings, self.breakers, health_metrics, self.memory.share_bytes)
        """The in-process monitor behind /status (None when FENDER_MONITOR is off)."""
        self.redis: StoreT = flavour.store(settings, self)
        """The resilient Redis store (the in-memory tier alone without REDIS_URL)."""
        if settings.redis_url:
            self.health.add(store_health_check(self.redis), timeout=settings.health_timeout)
        self.limiter: LimiterT = flavour.limiter(
            self.rate_limit, self.breakers, self, LeaseConfig.from_settings(settings)
        )
        self._wire_monitor()
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
            memory_limit_bytes=self.memory.share_bytes,
            monitor=self.monitor,
        )
        if settings.metrics_enabled:
            guard = self.health_endpoints.guard
            self.endpoints.add(
                settings.metrics_path,
                MetricsEndpoint(settings, guard),
                setting="FENDER_METRICS_PATH",
                gate=guard if settings.metrics_protected else None,
            )
        self.health_endpoints.add_to(self.endpoints)
        # A threaded server may answer liveness without an app thread (runtime/_fastpath).
        offer_fast_path(_live_paths(settings), self._live_answer)
        self._started_pid: int | None = None
        self._start_failed_at: float | None = None
        self._start_lock = threading.Lock()

    def _wire_monitor(self) -> None:
        """Tell the monitor every request and rejection; tick in each worker once started."""
        monitor = self.monitor
        if monitor is None:
            return
        self.observer.monitor = monitor
        self.limiter.core.on_reject = monitor.rejected

        def start() -> None:
            monitor.start()
            MONITOR_TICK.watch(monitor)

        self.on_startup(start)
        self.on_shutdown(monitor.stop)

    def _live_answer(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """The liveness answer, for a server's main thread (see runtime/_fastpath)."""
        response = self.health_endpoints.live(_LIVE_REQUEST)
        return response.status, list(response.headers), response.body

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
        if self.testing and "metrics_cache_seconds" not in settings.model_fields_set:
            # A test scrapes /metrics right after the requests it counts.
            settings = settings.model_copy(update={"metrics_cache_seconds": 0.0})
        if app is None:
            settings.require_production_ready()
            return settings
        from fender.apps import require_app_ready

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
        from fender.apps import django_routes_among

        def claim() -> None:
            self.yield_to_app(django_routes_among(self.endpoints.paths))

        claim()
        self.on_startup(claim)

    # --- checks ---------------------------------------------------------------------------------

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
            await call(hook)
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
        await self._run_startup_hooks()
        self.health_endpoints.loop.start()
        self.health.start()
        self._started_with(await self.health.run(kind=Kind.READINESS))

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
        off_the_loop(self._start_sync)

    def _start_sync(self) -> None:
        self._begin_again()
        asyncio.run(self._run_startup_hooks())
        self.health.start()
        if not self.health.select(kind=Kind.READINESS):
            self.lifecycle.mark_ready("startup complete")
        self._watch_drain()
        _logger.info(
            "fender_started",
            service=self.settings.service_name,
            env=self.settings.env,
            **self._loopback_admin(),
        )
        shut_down_at_exit(self)

    def shutdown_sync(self) -> None:
        """Blocking :meth:`shutdown` (WSGI, at interpreter exit)."""
        off_the_loop(lambda: asyncio.run(self.shutdown()))
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
            **self._loopback_admin(),
        )

    def _loopback_admin(self) -> dict[str, object]:
        """The start-up line's word on development's open door, when it is open."""
        if not self.health_endpoints.guard.loopback_open or self.settings.admin_policy == "never":
            return {}
        return {
            "admin_from_loopback": list(self.endpoints.protected),
            "admin_note": "protected endpoints open from loopback without a token because "
            "FENDER_ENV=development (FENDER_ADMIN_CIDRS empty)",
        }

    async def shutdown(self) -> None:
        """STOPPED; stop the refresher; run the shutdown hooks in reverse, each contained."""
        self.lifecycle.stop("shutdown")
        DRAIN_WATCH.forget(self)
        forget_at_exit(self)
        await self.health_endpoints.loop.stop()
        try:
            await self.health.aclose()
        except Exception:
            _logger.exception("shutdown_hook_failed", hook="health.aclose")
        cap = self.settings.shutdown_hook_timeout
        for hook in reversed(self._shutdown):
            try:
                await call_capped(hook, cap)
            except TimeoutError:
                _logger.error("shutdown_hook_timeout", hook=hook_name(hook), timeout_s=cap)  # noqa: TRY400  (no traceback: it did not fail, it overran)
            except Exception:
                _logger.exception("shutdown_hook_failed", hook=hook_name(hook))
        _logger.info("fender_stopped", service=self.settings.service_name)

    def _watch_drain(self) -> None:
        """Poll the drain flag, so every worker turns DRAINING (and closes connections)."""
        DRAIN_WATCH.watch(self)

    def poll_drain(self) -> bool:
        """One look at the drain flag; False once there is nothing more to watch for."""
        if self.lifecycle.draining:  # draining or stopped already
            return False
        self.health_endpoints.refresh_drain()
        return not self.lifecycle.draining


def _monitor(
    settings: Settings, breakers: Any, health_metrics: HealthMetrics, share_bytes: int | None
) -> Monitor | None:
    """The monitor of FENDER_MONITOR: its series in the multiprocess directory when there is one."""
    if not settings.monitor_enabled:
        return None

    def directory() -> Path | None:
        shared = metrics.multiprocess_dir()
        return None if shared is None else Path(shared) / "monitor"

    def open_breakers() -> list[str]:
        return [str(s.name) for s in breakers.snapshots() if s.state is BreakerState.OPEN]

    return Monitor(
        settings,
        directory=directory,
        share_bytes=share_bytes,
        open_breakers=open_breakers,
        streaks=health_metrics.streaks,
    )


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
