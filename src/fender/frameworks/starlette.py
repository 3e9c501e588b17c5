"""``fender.install(app)`` for Starlette and FastAPI applications.

Starlette and FastAPI route *after* any middleware runs, so the rate limits go on each route:
:func:`apply_to_starlette` wraps each route's own ASGI app (every leaf
:func:`~fender.frameworks.routes.walk` finds: mounts and included routers too, each
inclusion apart), which knows its template and its plan.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any

from fender.app import ASGI, build_runtime
from fender.errors import ConfigurationError
from fender.frameworks import framework_label
from fender.frameworks.asgi import AsgiRuntime
from fender.frameworks.routes import routes_of, walk
from fender.http.ratelimit import HttpRateLimit
from fender.middleware.asgi.access import FenderMiddleware
from fender.middleware.asgi.edge import EdgeMiddleware
from fender.middleware.asgi.ratelimit import LimitedRoute
from fender.middleware.asgi.routes import RouteMarker, coverage_of
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._tiered import AsyncTieredLimiter
from fender.settings import Settings

__all__ = ["apply_to_starlette", "install", "refuse_second_cors"]


def install(app: Any, *, settings: Settings | None = None, **options: Any) -> AsgiRuntime:
    """Install fender on a FastAPI or Starlette ``app``, in place; return its runtime.

    Adds the middleware (request ids, access events and metrics, JSON 500s), rate limits
    on every route (the limiter wraps each route, so it knows the route template), fender's
    endpoints (``/metrics``, the health family...) and fender's startup and shutdown hooks
    around the app's lifespan. ``options`` are settings fields overriding the environment.
    The runtime is also at ``app.state.fender``.

    Example:
        >>> from fastapi import FastAPI
        >>> app = FastAPI()
        >>> runtime = install(app, env="development")

    Raises:
        ConfigurationError: ``app`` is not a Starlette app (use ``fender.asgi.wrap``), fender
            is already installed on it, or a setting is invalid.
    """
    from starlette.applications import Starlette

    if not isinstance(app, Starlette):
        raise ConfigurationError(
            "app",
            type(app).__name__,
            "a FastAPI or Starlette application; wrap any other ASGI app with fender.asgi.wrap",
        )
    if getattr(app.state, "fender", None) is not None:
        raise ConfigurationError("app", type(app).__name__, "an app without fender installed")
    name = "fastapi" if type(app).__module__.startswith("fastapi") else "starlette"
    runtime = build_runtime(
        settings, flavour=ASGI, framework=framework_label(name), app=app, **options
    )
    refuse_second_cors(app, runtime.settings)

    # fender's layers go around Starlette's whole stack, ServerErrorMiddleware included, so
    # that the app's own 500 handler (or fender's JSON one, when it has none) runs inside the
    # request's context: it sees the request id, and its status is the one recorded.
    handlers = app.exception_handlers
    if Exception not in handlers and HTTPStatus.INTERNAL_SERVER_ERROR not in handlers:
        app.add_exception_handler(Exception, _internal_error)
    build_stack = app.build_middleware_stack

    def build_with_fender() -> Any:
        # The first call (lifespan or first request): routes declared after install() exist.
        runtime.yield_to_app(_fixed_paths(app))
        refuse_second_cors(app, runtime.settings)  # a CORSMiddleware added after install()
        _session_cookie(app, runtime)
        leaves = walk(routes_of(app.router), unseen=lambda *_: None)
        runtime.headers.add_endpoints(leaf.endpoint for leaf in leaves)
        # The edge (proxies, hosts, HTTPS, CORS) inside the access layer, outside the app.
        edge = EdgeMiddleware(build_stack(), runtime.edge)
        return FenderMiddleware(edge, runtime, routed=True)

    # Starlette builds its stack on the first call through this method: the hook it offers.
    app.build_middleware_stack = build_with_fender  # type: ignore[method-assign]

    limiter = runtime.limiter
    apply_to_starlette(app, limiter)

    # The app's own /status or /health wins over fender's (see Runtime.yield_to_app).
    runtime.yield_to_app(_fixed_paths(app))

    # Again at startup: routes added after install() get their limits and labels too.
    def limit_new_routes() -> None:
        runtime.yield_to_app(_fixed_paths(app))
        apply_to_starlette(app, limiter)

    runtime.on_startup(limit_new_routes)

    original = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(inner_app: Any) -> AsyncIterator[Any]:
        await runtime.startup()
        try:
            async with original(inner_app) as state:
                yield state
        finally:
            await runtime.shutdown()

    app.router.lifespan_context = lifespan
    app.state.fender = runtime
    return runtime


def refuse_second_cors(app: Any, settings: Settings) -> None:
    """Raise when FENDER_CORS_ORIGINS is set and the app has Starlette's CORSMiddleware.

    Two CORS layers would each add ``Access-Control-Allow-Origin``, and browsers refuse a
    response with two. With FENDER_CORS_ORIGINS empty fender leaves CORS to the app.
    """
    from starlette.middleware.cors import CORSMiddleware

    if not settings.cors_origins.strip():
        return
    for middleware in app.user_middleware:
        cls = getattr(middleware, "cls", None)
        if isinstance(cls, type) and issubclass(cls, CORSMiddleware):
            raise ConfigurationError(
                "FENDER_CORS_ORIGINS",
                settings.cors_origins,
                f"empty while the app has {cls.__name__} (app.add_middleware): one CORS "
                "layer only; remove it, or unset FENDER_CORS_ORIGINS to leave CORS to it",
            )


def _session_cookie(app: Any, runtime: AsgiRuntime) -> None:
    """Harden the cookie of the app's SessionMiddleware as a session cookie, whatever its name."""
    for middleware in app.user_middleware:
        if getattr(middleware.cls, "__name__", "") == "SessionMiddleware":
            runtime.headers.with_session_cookie(str(middleware.kwargs.get("session_cookie", "")))


def _fixed_paths(app: Any) -> list[str]:
    """The app's route templates without parameters, the only ones a fender path can equal."""
    leaves = walk(routes_of(app.router), unseen=lambda *_: None)  # warned about elsewhere
    return [leaf.template for leaf in leaves if "{" not in leaf.template]


async def _internal_error(_request: Any, _exc: Exception) -> Any:
    """Starlette handler: fender's JSON 500, with the request id and nothing about the cause."""
    from starlette.responses import Response

    from fender.http.endpoints import error_response
    from fender.observability._logging import current_request

    context = current_request()
    response = error_response(500, "internal_error", context.request_id if context else None)
    return Response(response.body, 500, media_type="application/json")


def apply_to_starlette(
    app: Any, limiter: AsyncTieredLimiter, config: RateLimitConfig | None = None
) -> int:
    """Put every HTTP route of a Starlette or FastAPI ``app`` behind its limits.

    Wraps the ASGI app of each leaf :func:`~fender.frameworks.routes.walk` finds (routes,
    mounted routers and apps, hosts, FastAPI's included routers once per inclusion) in a
    :class:`~fender.middleware.asgi.ratelimit.LimitedRoute`; with limits disabled, in a
    :class:`~fender.middleware.asgi.routes.RouteMarker`, so that metrics and logs name the
    full template in every configuration. Idempotent (a wrapped app is never wrapped again; a
    marker becomes a limiter once limits are enabled):
    call it again from the app's startup so that routes added after install are covered, and
    a request answered by a route without a wrapper calls it again (see
    :func:`~fender.middleware.asgi.routes.report_unmarked`).

    Args:
        app: the Starlette or FastAPI application.
        limiter: the async tiered limiter (started by the caller).
        config: defaults to the limiter's.

    Returns:
        The number of routes newly wrapped (or whose marker became a limiter).

    Raises:
        ConfigurationError: a decorator's limit does not fit the configuration.
    """
    config = limiter.core.config if config is None else config
    http = HttpRateLimit(config) if config.enabled else None
    coverage = coverage_of(app.router)
    coverage.rewalk = _rewalk(app, limiter, config)
    wrapped = 0
    for leaf in walk(routes_of(app.router), unseen=coverage.unseen):
        current = leaf.holder.app
        if isinstance(current, RouteMarker):
            if current.template != leaf.template:
                coverage.unseen(
                    leaf.holder,
                    leaf.template,
                    f"the same route object is reached under two templates: limited and "
                    f"labelled as {current.template}; give each its own route",
                )
            if http is None or isinstance(current, LimitedRoute):
                continue
            current = current.app
        if http is None:
            leaf.holder.app = RouteMarker(current, leaf.template)
        else:
            plan = http.plan_for(leaf.template, leaf.endpoint)
            leaf.holder.app = LimitedRoute(
                current, route=leaf.template, plan=plan, http=http, limiter=limiter
            )
        wrapped += 1
    return wrapped


def _rewalk(app: Any, limiter: AsyncTieredLimiter, config: RateLimitConfig) -> Callable[[], int]:
    # Weakly: the coverage registry outlives nothing, least of all a dropped app.
    ref = weakref.ref(app)

    def rewalk() -> int:
        found = ref()
        return 0 if found is None else apply_to_starlette(found, limiter, config)

    return rewalk
