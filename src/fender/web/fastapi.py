"""``fender.install(app)`` for Starlette and FastAPI applications."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

from fender.errors import ConfigurationError
from fender.settings import Settings
from fender.web.access import FenderMiddleware
from fender.web.runtime import Runtime, build_runtime

__all__ = ["install"]


def install(app: Any, *, settings: Settings | None = None, **options: Any) -> Runtime:
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
    from fender.web.flask import _framework

    name = "fastapi" if type(app).__module__.startswith("fastapi") else "starlette"
    runtime = build_runtime(settings, framework=_framework(name), app=app, **options)

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
        return FenderMiddleware(build_stack(), runtime, routed=True)

    # Starlette builds its stack on the first call through this method: the hook it offers.
    app.build_middleware_stack = build_with_fender  # type: ignore[method-assign]

    from fender.ratelimit.limiter import AsyncTieredLimiter
    from fender.web.ratelimit import apply_to_starlette

    limiter = runtime.limiter
    if not isinstance(limiter, AsyncTieredLimiter):  # pragma: no cover  (built asynchronous)
        raise TypeError("an ASGI runtime has an asyncio limiter")
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


def _fixed_paths(app: Any) -> list[str]:
    """The app's route templates without parameters, the only ones a fender path can equal."""
    from fender.web.routes import routes_of, walk

    leaves = walk(routes_of(app.router), unseen=lambda *_: None)  # warned about elsewhere
    return [leaf.template for leaf in leaves if "{" not in leaf.template]


async def _internal_error(_request: Any, _exc: Exception) -> Any:
    """Starlette handler: fender's JSON 500, with the request id and nothing about the cause."""
    from starlette.responses import Response

    from fender.observability.logging import current_request
    from fender.web.endpoints import error_response

    context = current_request()
    response = error_response(500, "internal_error", context.request_id if context else None)
    return Response(response.body, 500, media_type="application/json")
