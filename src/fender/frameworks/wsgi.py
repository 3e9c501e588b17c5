"""``fender.wsgi.wrap(app)``: fender around any WSGI app.

Order is the ASGI one: request id -> fender's endpoints -> access (metrics, access event,
JSON 500) -> the edge (head bounds, trusted proxies, allowed hosts, HTTPS, CORS, probe events)
-> rate limits -> the app.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from fender._types import WSGIApp, WSGIEnviron
from fender.app import WSGI, Runtime, build_runtime
from fender.apps import django_route, is_django
from fender.middleware.wsgi.access import FenderWSGI
from fender.middleware.wsgi.edge import EdgeWSGI
from fender.middleware.wsgi.ratelimit import RateLimitWSGI
from fender.ratelimit._tiered import TieredLimiter
from fender.settings import Settings
from fender.stores._sync import ResilientRedis

__all__ = ["WsgiRuntime", "wrap"]

WsgiRuntime: TypeAlias = Runtime[ResilientRedis, TieredLimiter]
"""The runtime of a WSGI app: the threaded store and limiter."""


def wrap(app: WSGIApp, *, settings: Settings | None = None, **options: Any) -> FenderWSGI:
    """Wrap any WSGI app in fender: request ids, JSON logs, metrics, fender's endpoints.

    ``options`` are settings fields overriding the environment. WSGI has no lifespan: the
    startup hooks run on the process's first request, the shutdown hooks at interpreter exit.

    Example:
        >>> def app(environ, start_response): ...
        >>> app = wrap(app, env="development")
    """
    runtime = build_runtime(settings, flavour=WSGI, framework="wsgi", app=app, **options)
    route_of = None
    if is_django(app):  # not merely Django configured in this process
        runtime.yield_to_django()
        # Django routes inside its handler: fender asks its URLconf for the template.
        route_of = _django_route
    if runtime.rate_limit.enabled:
        app = RateLimitWSGI(app, runtime.limiter)
    return FenderWSGI(EdgeWSGI(app, runtime.edge), runtime, route_of=route_of)


def _django_route(environ: WSGIEnviron) -> str | None:
    return django_route(str(environ.get("PATH_INFO") or "/"))
