"""The health family of endpoints, written once for ASGI and WSGI.

| path | answers |
|---|---|
| GET /health/live | pass unless the process is broken (loop stalled, failed start) |
| GET /health/ready | 503 while STARTING or DRAINING, else the readiness checks' status |
| GET /health/quick | the cached snapshot, no I/O |
| GET /health | a fresh run, aggregate status only (safe to expose) |
| GET /health/detailed | a fresh run, every check (protected) |
| GET /health/version | version, release, commit, build time, python, framework, started_at |
| POST /health/drain | readiness off for every worker of this server (protected) |
| GET /status | operational summary, HTML for browsers, JSON otherwise (protected) |
| GET /circuit-breaker | every circuit breaker (protected) |

HTTP codes: one mapping for every endpoint above that reports a health status: pass 200,
warn FENDER_HEALTH_WARN_STATUS (200), fail FENDER_HEALTH_FAIL_STATUS (503). Two rules keep
the probes meaningful to Kubernetes, which reads any code from 200 to 399 as success:

* readiness answers 503 while STARTING, DRAINING or STOPPED whatever the mapping: draining
  exists to take the pod out of rotation, and no check result may undo that;
* the probes (live, ready) answer ``fail`` with 503 when the mapping gives ``fail`` a success
  code (a fail code of 200 may suit a dashboard; a probe that never fails is a bug).

Mapping ``warn`` to 503 also makes a degraded pod unready. Degraded usually means a shared
dependency is down, so every pod turns unready at once and the Service has no endpoint left:
that is why ``warn`` defaults to 200 (degrade, never fail the user).

Protected endpoints answer to a bearer FENDER_ADMIN_TOKEN (compared in constant time) or a
client in FENDER_ADMIN_CIDRS (in development with none set: loopback), as FENDER_ADMIN_POLICY
says; others get fender's JSON 404 (or
401), for any method, and each refusal is a security event (see :mod:`fender.http.admin`:
the Host and cross-site rules of access by network). With FENDER_HIDE_VERSIONS (on in
production by default) ``/health/version`` shows the Python, framework and fender versions
only to whoever may read the protected endpoints.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable
from typing import Any, Final

from fender._negotiate import preferred
from fender._status import Status
from fender._version import __version__
from fender.health import HealthRegistry, HealthReport, Kind, RenderConfig, render_response
from fender.http.admin import AdminGuard
from fender.http.endpoints import (
    NO_STORE,
    Endpoint,
    Endpoints,
    Flow,
    Request,
    Response,
    json_response,
)
from fender.http.status_page import PAGE_CSP, STYLESHEET, status_page
from fender.monitor import Monitor
from fender.observability._logging import get_logger
from fender.ratelimit._clientip import ClientIPResolver
from fender.resilience import BreakerRegistry
from fender.runtime._drain import is_draining, request_drain, runtime_directory
from fender.runtime._lifecycle import Lifecycle, State
from fender.settings import (
    ADMIN_FIXED_PATHS,
    ADMIN_SUBPATHS,
    ALIAS_PATHS,
    FIXED_PATHS,
    HEALTH_SUBPATHS,
    Settings,
)

__all__ = ["HealthEndpoints", "LoopMonitor", "RunChecks"]

HTML_TYPE: Final = "text/html; charset=utf-8"
_logger = get_logger("fender.health")
_STATUS_TYPES: Final = ("application/json", "text/html")  # /status: JSON unless HTML wins
PUBLIC_RUN_INTERVAL: Final = 1.0
"""Seconds between two runs of the checks triggered by the public ``GET /health``."""
CSS_TYPE: Final = "text/css; charset=utf-8"
STATUS_REFRESH: Final = 10
"""Seconds after which the /status page loads itself again (a meta refresh: no script)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RunChecks:
    """Effect: run the registry's checks (of ``kind``) now; the same request in both worlds."""

    registry: HealthRegistry
    kind: Kind | None = None

    async def run_async(self) -> HealthReport:
        """On the app's event loop."""
        return await self.registry.run(kind=self.kind)

    def run_sync(self) -> HealthReport:
        """Blocking (WSGI)."""
        return self.registry.run_sync(kind=self.kind)


class LoopMonitor:
    """Measures how late the event loop runs a timer: a stalled loop is a broken process."""

    def __init__(self, interval: float = 0.5) -> None:
        """Tick every ``interval`` seconds once started."""
        self.interval = interval
        self.lag = 0.0
        self._task: Any = None

    async def _run(self) -> None:
        import asyncio

        while True:
            expected = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            self.lag = max(0.0, time.monotonic() - expected)

    def start(self) -> None:
        """Start on the running loop (ASGI startup)."""
        import asyncio

        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the ticking task."""
        import asyncio
        import contextlib

        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class HealthEndpoints:
    """The handlers of the health family; one per application."""

    def __init__(
        self,
        settings: Settings,
        registry: HealthRegistry,
        lifecycle: Lifecycle,
        breakers: BreakerRegistry,
        *,
        framework: str,
        drain_started_at: Callable[[], float],
        client_ips: ClientIPResolver,
        memory_limit_bytes: int | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        """Precompute what never changes (the version document, the render config).

        ``memory_limit_bytes``: this worker's share of the container's memory, which /status
        shows the RSS against (as the memory check and the guard judge it).
        """
        self.memory_limit_bytes = memory_limit_bytes
        self.monitor = monitor
        self.settings = settings
        self.registry = registry
        self.lifecycle = lifecycle
        self.breakers = breakers
        self.guard = AdminGuard(settings, client_ips)
        self.runtime_dir = runtime_directory(settings)
        self.loop = LoopMonitor()
        self._drain_started_at = drain_started_at
        self._last_run = -PUBLIC_RUN_INTERVAL
        self._started_wall = time.time()
        version = settings.release or __version__
        self._render = RenderConfig(
            http_status={
                Status.PASS: 200,
                Status.WARN: settings.health_warn_status,
                Status.FAIL: settings.health_fail_status,
            },
            service_id=settings.service_name,
            version=version,
            release_id=settings.release,
        )
        document: dict[str, object] = {
            "service": settings.service_name,
            "version": version,
            "release_id": settings.release or None,
            "commit": settings.commit or None,
            "build_time": settings.build_time or None,
            "python": platform.python_version(),
            "framework": framework,
            "fender": __version__,
            "started_at": _iso(self._started_wall),
        }
        self._version = json_response(200, document)
        self._public_version = self._version
        if settings.versions_hidden:
            stack = ("python", "framework", "fender")
            self._public_version = json_response(
                200, {k: v for k, v in document.items() if k not in stack}
            )

    def add_to(self, endpoints: Endpoints) -> None:
        """Serve the family at the configured paths (the table settings validate)."""
        prefix = self.settings.health_prefix
        family: dict[str, Endpoint] = {
            "": self.health,
            "/live": self.live,
            "/ready": self.ready,
            "/quick": self.quick,
            "/detailed": self.detailed,
            "/version": self.version,
            "/drain": self.drain,
        }
        for sub in HEALTH_SUBPATHS:
            methods = ("POST",) if sub == "/drain" else ("GET",)
            endpoints.add(
                prefix + sub,
                family[sub],
                methods,
                setting="FENDER_HEALTH_PREFIX",
                gate=self.guard if sub in ADMIN_SUBPATHS else None,
            )
        fixed: dict[str, Endpoint] = {
            "/status": self.status,
            "/status/style.css": self.stylesheet,
            "/circuit-breaker": self.circuit_breakers,
        }
        for path in FIXED_PATHS:
            endpoints.add(path, fixed[path], gate=self.guard if path in ADMIN_FIXED_PATHS else None)
        if self.settings.health_aliases:
            aliases: dict[str, Endpoint] = {
                "/healthz": self.health,
                "/livez": self.live,
                "/readyz": self.ready,
            }
            for path in ALIAS_PATHS:
                endpoints.add(path, aliases[path], setting="FENDER_HEALTH_ALIASES")

    # --- state ----------------------------------------------------------------------------------

    def refresh_drain(self) -> None:
        """Turn DRAINING when another process raised the drain flag."""
        if not self.lifecycle.draining and is_draining(self.runtime_dir, self._drain_started_at()):
            self.lifecycle.drain("drain flag raised")

    def _max_age(self) -> float:
        return 3 * self.settings.health_interval + self.settings.health_deadline

    # --- public ---------------------------------------------------------------------------------

    def live(self, _request: Request) -> Response:
        """Pass unless the process is broken (then fail).

        Broken: the event loop stalled past FENDER_LIVENESS_MAX_LAG, or a start that failed.
        """
        broken = self.lifecycle.broken
        if broken is not None:
            return json_response(
                self._probe_code(Status.FAIL), {"status": "fail", "output": broken}
            )
        if self.loop.lag > self.settings.liveness_max_lag:
            return json_response(
                self._probe_code(Status.FAIL),
                {"status": "fail", "output": f"event loop lag {self.loop.lag:.1f}s"},
            )
        return json_response(self._probe_code(Status.PASS), {"status": "pass"})

    def ready(self, _request: Request) -> Response:
        """The readiness checks' status from the snapshot, once READY.

        503 while STARTING, DRAINING or STOPPED, whatever the HTTP mapping says: a draining
        pod must leave the load balancer's rotation. Once READY, the aggregate of the
        readiness checks, coded by the mapping (pass 200, warn 200, fail 503 by default).
        """
        self.refresh_drain()
        state = self.lifecycle.state
        if state is not State.READY:
            return json_response(503, {"status": "fail", "state": str(state)})
        report = self.registry.snapshot(kind=Kind.READINESS, max_age=self._max_age())
        return json_response(
            self._probe_code(report.status), {"status": str(report.status), "state": str(state)}
        )

    def quick(self, request: Request) -> Response:
        """The snapshot, without running any check.

        Every check when authorized (as for /health/detailed), the aggregate status only
        otherwise.
        """
        report = self.registry.snapshot(max_age=self._max_age())
        if self.guard.authorized(request):
            return self._rendered(report, request)
        return self._summary_response(report, request)

    def health(self, request: Request) -> Response | Flow:
        """Aggregate status only, from a run at most PUBLIC_RUN_INTERVAL seconds old.

        Public and unauthenticated: a caller must not be able to make the service hit its
        dependencies at will, so runs are spaced (and shared: single flight).
        """
        if time.monotonic() - self._last_run < PUBLIC_RUN_INTERVAL:
            report = self.registry.snapshot(max_age=self._max_age())
            return self._summary_response(report, request)
        return self._fresh_summary(request)

    def _fresh_summary(self, request: Request) -> Flow:
        report: HealthReport = yield RunChecks(self.registry)
        self._last_run = time.monotonic()
        return self._summary_response(report, request)

    def _summary_response(self, report: HealthReport, request: Request) -> Response:
        """The aggregate only, as fender JSON or health+json (the same body, either type)."""
        rendered = render_response(
            report, accept=request.headers.get("accept"), summary=True, config=self._render
        )
        return Response(
            rendered.status_code, (("content-type", rendered.content_type), NO_STORE), rendered.body
        )

    def detailed(self, request: Request) -> Response | Flow:
        """A fresh run, every check (protected)."""
        if self.guard.grant(request) is None:
            return self.guard.deny()
        return self._detailed(request)

    def _detailed(self, request: Request) -> Flow:
        report: HealthReport = yield RunChecks(self.registry)
        return self._rendered(report, request)

    def version(self, request: Request) -> Response:
        """What is running (the stack's versions hidden from the public, as configured)."""
        if self._public_version is self._version or self.guard.authorized(request):
            return self._version
        return self._public_version

    def drain(self, request: Request) -> Response:
        """Raise the drain flag for every worker of this server (protected: an action)."""
        if self.guard.grant(request, strict=True, action="drain") is None:
            return self.guard.deny()
        # This worker first: whatever happens to the flag, the caller asked it to drain.
        self.lifecycle.drain("POST /health/drain")
        try:
            request_drain(self.runtime_dir, "POST /health/drain")
        except OSError as exc:
            _logger.error(  # noqa: TRY400  (a bad setting, not a bug: the reason is enough)
                "drain_flag_unwritable",
                runtime_dir=str(self.runtime_dir),
                error=f"{type(exc).__name__}: {exc.strerror or exc}",
            )
            return json_response(
                500,
                {
                    "error": "drain_flag_unwritable",
                    "detail": "this worker is draining, but the drain flag that tells the "
                    "others could not be written: make FENDER_RUNTIME_DIR a directory this "
                    "user alone can write",
                    "runtime_dir": str(self.runtime_dir),
                    "state": str(self.lifecycle.state),
                },
            )
        return json_response(202, {"status": "draining", "state": str(self.lifecycle.state)})

    def circuit_breakers(self, request: Request) -> Response:
        """Every circuit breaker: state, counts, time to the next trial (protected)."""
        if self.guard.grant(request) is None:
            return self.guard.deny()
        return json_response(200, {"breakers": self._breakers()})

    def status(self, request: Request) -> Response:
        """Operational summary; HTML when a browser asks (protected)."""
        if self.guard.grant(request) is None:
            return self.guard.deny()
        self.refresh_drain()
        summary = self._summary()
        if preferred(request.headers.get("accept"), _STATUS_TYPES) == "text/html":
            body = status_page(summary).encode()
            return Response(200, (("content-type", HTML_TYPE), NO_STORE, PAGE_CSP), body)
        return json_response(200, summary)

    def stylesheet(self, _request: Request) -> Response:
        """The status page's stylesheet (a file, so the page needs no inline style)."""
        return Response(
            200, (("content-type", CSS_TYPE), ("cache-control", "max-age=300")), STYLESHEET
        )

    # --- helpers --------------------------------------------------------------------------------

    def _code(self, status: Status) -> int:
        return self._render.http_status[status]

    def _probe_code(self, status: Status) -> int:
        code = self._code(status)
        # Kubernetes counts 200-399 as success: a failing probe must not look healthy.
        return 503 if status is Status.FAIL and code < 400 else code  # noqa: PLR2004  (first error code)

    def _rendered(self, report: HealthReport, request: Request) -> Response:
        rendered = render_response(
            report, accept=request.headers.get("accept"), config=self._render
        )
        return Response(
            rendered.status_code, (("content-type", rendered.content_type), NO_STORE), rendered.body
        )

    def _breakers(self) -> list[dict[str, object]]:
        return [
            {**snapshot.as_dict(), "state": str(snapshot.state)}
            for snapshot in self.breakers.snapshots()
        ]

    def _summary(self) -> dict[str, Any]:
        import psutil

        report = self.registry.snapshot(max_age=self._max_age())
        rss = psutil.Process().memory_info().rss
        limit_bytes = self.memory_limit_bytes
        summary: dict[str, Any] = {
            "service": self.settings.service_name,
            "status": str(report.status),
            "state": str(self.lifecycle.state),
            "uptime_seconds": round(self.lifecycle.uptime(), 1),
            "started_at": _iso(self._started_wall),
            "pid": os.getpid(),
            "version": self._render.version,
            "degraded": sorted(n for n, o in report.checks.items() if o.status is Status.WARN),
            "failing": sorted(n for n, o in report.checks.items() if o.status is Status.FAIL),
            "checks": {
                name: {"status": str(o.status), "output": o.result.output}
                for name, o in report.checks.items()
            },
            "breakers": self._breakers(),
            "memory": {
                "rss_bytes": rss,
                "limit_bytes": limit_bytes,
                "used_ratio": round(rss / limit_bytes, 3) if limit_bytes else None,
            },
            "refresh_seconds": STATUS_REFRESH,
        }
        if self.monitor is not None:
            summary.update(self.monitor.summary())
        return summary


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
