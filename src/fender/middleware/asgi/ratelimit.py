"""Pure ASGI rate limiting: the route wrapper and the middleware for raw paths.

Both ask :class:`~fender.http.ratelimit.HttpRateLimit` for the plan, the client and the keys,
the async tiered limiter for one decision, and answer the 429 or add the headers.
"""

from __future__ import annotations

import logging

from fender._http import PEER_KEY, ROUTE_KEY, encode_headers, forwarding_headers, header_map
from fender._types import ASGIApp, Message, Receive, Scope, Send
from fender.http.ratelimit import HttpRateLimit, RateLimitRequest, RoutePlan, normal_path
from fender.middleware.asgi.access import RESPONSE_HEADERS
from fender.middleware.asgi.routes import RouteMarker
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._tiered import AsyncTieredLimiter

__all__ = ["LimitedRoute", "RateLimitMiddleware", "limit_asgi"]

logger = logging.getLogger("fender.ratelimit")


def _scope_request(scope: Scope, route: str, client: str) -> RateLimitRequest:
    return RateLimitRequest(
        scope["method"], scope["path"], route, client, header_map(scope["headers"]), scope
    )


async def limit_asgi(  # noqa: PLR0917  (positional: once per request)
    http: HttpRateLimit,
    limiter: AsyncTieredLimiter,
    plan: RoutePlan,
    route: str,
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """The ASGI request path shared by the route wrapper and the bare middleware."""
    # Only the decision is guarded: a failure there lets the request through, once. The app
    # itself runs outside the try, so its own exceptions are never mistaken for ours.
    try:
        peer = scope.get("client")
        # Resolved already by the edge (PEER_KEY): the scope's client is the effective one.
        forwarding = (
            forwarding_headers(scope["headers"]) if http.proxies and PEER_KEY not in scope else None
        )
        client = http.client(peer[0] if peer else None, forwarding)
        if client is None:  # allow-listed
            extra, rejection = [], None
        else:
            make = (lambda: _scope_request(scope, route, client)) if plan.needs_request else None
            items = http.items(plan, client, route, make)
            decision = await limiter.decide(items, plan.cost)
            extra = http.raw_headers(plan, decision)
            rejection = None if decision.allowed else http.rejection(plan, decision)
    except Exception:
        logger.exception("rate_limit_failed", extra={"route": route})
        extra, rejection = [], None
    if rejection is not None:
        await send(
            {
                "type": "http.response.start",
                "status": rejection.status,
                "headers": [
                    *encode_headers(rejection.headers),
                    (b"content-length", str(len(rejection.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": rejection.body})
        return
    if not extra:
        await app(scope, receive, send)
        return
    response_headers = scope.get(RESPONSE_HEADERS)
    if response_headers is not None:  # fender's middleware adds them: no second wrapper
        response_headers.extend(extra)
        await app(scope, receive, send)
        return

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    await app(scope, receive, send_with_headers)


class LimitedRoute(RouteMarker):
    """Pure ASGI: the app of one Starlette route, behind that route's limits.

    The Starlette adapter puts it in ``route.app``, which ``Route.handle`` awaits once
    routing has matched, so the template and the endpoint's decorators are known here. Like
    the :class:`~fender.middleware.asgi.routes.RouteMarker` it is, it records the template
    in the scope.
    """

    __slots__ = ("http", "limiter", "plan")

    def __init__(
        self,
        app: ASGIApp,
        *,
        route: str,
        plan: RoutePlan,
        http: HttpRateLimit,
        limiter: AsyncTieredLimiter,
    ) -> None:
        """Wrap the route's ``app``, known by its template ``route``."""
        super().__init__(app, route)
        self.plan = plan
        self.http = http
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope."""
        scope[ROUTE_KEY] = self.template
        if scope["type"] != "http" or self.http.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        await limit_asgi(
            self.http, self.limiter, self.plan, self.template, self.app, scope, receive, send
        )


class RateLimitMiddleware:
    """Pure ASGI middleware for an app without a router fender knows: only raw paths.

    The default is per client ip across all paths; ``FENDER_RATE_LIMIT_PATHS`` entries match
    exact (normalised) paths and count per client ip and path.
    """

    def __init__(
        self, app: ASGIApp, limiter: AsyncTieredLimiter, config: RateLimitConfig | None = None
    ) -> None:
        """Wrap ``app``."""
        self.app = app
        self.limiter = limiter
        self.http = HttpRateLimit(limiter.core.config if config is None else config)
        self.enabled = self.http.config.enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope."""
        if scope["type"] != "http" or not self.enabled or self.http.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        route, plan = self.http.plan_for_path(normal_path(scope["path"]))
        await limit_asgi(self.http, self.limiter, plan, route, self.app, scope, receive, send)
