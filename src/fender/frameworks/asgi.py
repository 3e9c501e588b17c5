"""``fender.asgi.wrap(app)``: fender around any ASGI app.

Order of the stack, outermost first: lifespan hooks ->
:class:`~fender.middleware.asgi.access.FenderMiddleware` (request id, fender's endpoints,
metrics, access event, JSON 500) -> :class:`~fender.middleware.asgi.edge.EdgeMiddleware`
(head bounds, trusted proxies, allowed hosts, HTTPS, CORS, probe events) -> rate limits ->
the app.
fender's endpoints are not in the access log unless FENDER_ACCESS_LOG_OWN_ENDPOINTS is on.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from fender._types import ASGIApp, Scope
from fender.app import ASGI, Runtime, build_runtime
from fender.apps import django_route, is_django
from fender.middleware.asgi.access import FenderMiddleware
from fender.middleware.asgi.edge import EdgeMiddleware
from fender.middleware.asgi.lifespan import LifespanMiddleware
from fender.middleware.asgi.ratelimit import RateLimitMiddleware
from fender.ratelimit._tiered import AsyncTieredLimiter
from fender.settings import Settings
from fender.stores._async import AsyncResilientRedis

__all__ = ["AsgiRuntime", "stack", "wrap"]

AsgiRuntime: TypeAlias = Runtime[AsyncResilientRedis, AsyncTieredLimiter]
"""The runtime of an ASGI app: the asyncio store and limiter."""


def stack(app: ASGIApp, runtime: AsgiRuntime) -> ASGIApp:
    """The request path around ``app``, without the lifespan layer."""
    inner: ASGIApp = app
    if runtime.rate_limit.enabled:
        inner = RateLimitMiddleware(inner, runtime.limiter)
    inner = EdgeMiddleware(inner, runtime.edge)
    # Django routes inside its handler: fender asks its URLconf for the template.
    return FenderMiddleware(inner, runtime, route_of=_django_route if is_django(app) else None)


def _django_route(scope: Scope) -> str | None:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return django_route(path[len(root) :] if root and path.startswith(root) else path)


def wrap(app: ASGIApp, *, settings: Settings | None = None, **options: Any) -> ASGIApp:
    """Wrap any ASGI app in fender: request ids, JSON logs, metrics, fender's endpoints.

    ``options`` are settings fields (``slow_request_ms=250``...) overriding the environment.

    Example:
        >>> async def app(scope, receive, send): ...
        >>> app = wrap(app, env="development")

    The returned app's ``runtime`` attribute is fender's :class:`Runtime` for it.
    """
    runtime = build_runtime(settings, flavour=ASGI, framework="asgi", app=app, **options)
    if is_django(app):  # not merely Django configured in this process
        runtime.yield_to_django()
    return LifespanMiddleware(stack(app, runtime), runtime)
