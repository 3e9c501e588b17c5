"""``fender.install(app)`` for Starlette and FastAPI applications."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

from fender.errors import ConfigurationError
from fender.settings import Settings
from fender.web.access import AccessMiddleware
from fender.web.asgi import EndpointsMiddleware
from fender.web.requestid import RequestIdMiddleware
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
    runtime = build_runtime(settings, framework=_framework(name), **options)

    def reraise() -> bool:
        # The app's own handler for 500 or Exception, and debug tracebacks, take precedence.
        handlers = app.exception_handlers
        return (
            bool(app.debug) or Exception in handlers or HTTPStatus.INTERNAL_SERVER_ERROR in handlers
        )

    # add_middleware puts each new one outermost: this adds them innermost first.
    app.add_middleware(
        AccessMiddleware, observer=runtime.observer, reraise=reraise, lifecycle=runtime.lifecycle
    )
    app.add_middleware(EndpointsMiddleware, runtime=runtime)
    app.add_middleware(RequestIdMiddleware)

    from fender.ratelimit.limiter import AsyncTieredLimiter
    from fender.web.ratelimit import apply_to_starlette

    limiter = runtime.limiter
    if not isinstance(limiter, AsyncTieredLimiter):  # pragma: no cover  (built asynchronous)
        raise TypeError("an ASGI runtime has an asyncio limiter")
    apply_to_starlette(app, limiter)

    # Again at startup: routes added after install() get their limits too.
    def limit_new_routes() -> None:
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
