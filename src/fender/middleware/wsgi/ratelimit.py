"""WSGI rate limiting for raw paths, and the one decision of a WSGI request (Flask's too)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fender._http import PEER_KEY, environ_forwarding, environ_headers, status_line
from fender._types import StartResponse, WSGIApp
from fender._types import WSGIEnviron as Environ
from fender.http.endpoints import Response
from fender.http.ratelimit import HttpRateLimit, RateLimitRequest, RoutePlan, normal_path
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._tiered import TieredLimiter

__all__ = ["RateLimitWSGI", "limit_sync"]

logger = logging.getLogger("fender.ratelimit")


def limit_sync(  # noqa: PLR0917  (positional: once per request)
    http: HttpRateLimit,
    limiter: TieredLimiter,
    plan: RoutePlan,
    route: str,
    environ: Environ,
    raw: Any,
) -> tuple[Response | None, list[tuple[str, str]]] | None:
    """Decide one WSGI request: the 429 to answer (None: admitted) and the headers to add.

    None when it is not limited (allow-listed, or a limiter bug, logged: the request passes).
    ``raw`` is what a key function sees as the request (the environ, or Flask's request).
    """
    try:
        # Resolved already by the edge (PEER_KEY): REMOTE_ADDR is the effective client.
        forwarding = None if PEER_KEY in environ else environ_forwarding(environ)
        client = http.client(environ.get("REMOTE_ADDR"), forwarding)
        if client is None:
            return None

        def make() -> RateLimitRequest:
            return RateLimitRequest(
                str(environ.get("REQUEST_METHOD", "GET")),
                str(environ.get("PATH_INFO", "")),
                route,
                client,
                environ_headers(environ),
                raw,
            )

        items = http.items(plan, client, route, make if plan.needs_request else None)
        decision = limiter.decide(items, plan.cost)
        if decision.allowed:
            return None, http.headers(plan, decision)
        return http.rejection(plan, decision, environ.get("fender.request_id")), []
    except Exception:
        logger.exception("rate_limit_failed", extra={"route": route})
        return None


class RateLimitWSGI:
    """WSGI middleware for raw paths (``SCRIPT_NAME`` + ``PATH_INFO``).

    Keyed as :class:`RateLimitMiddleware`: the default per client ip, path-table entries per path.
    """

    def __init__(
        self, app: WSGIApp, limiter: TieredLimiter, config: RateLimitConfig | None = None
    ) -> None:
        """Wrap ``app``."""
        self.app = app
        self.limiter = limiter
        self.http = HttpRateLimit(limiter.core.config if config is None else config)
        self.enabled = self.http.config.enabled

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request."""
        path = normal_path(str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")))
        if not self.enabled or self.http.exempt(path):
            return self.app(environ, start_response)
        route, plan = self.http.plan_for_path(path)
        outcome = limit_sync(self.http, self.limiter, plan, route, environ, environ)
        if outcome is None:
            return self.app(environ, start_response)
        rejection, extra = outcome
        if rejection is not None:
            start_response(status_line(rejection.status), list(rejection.headers))
            return [rejection.body]

        def start_limited(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [*headers, *extra]  # a copy: the app may reuse its list
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, start_limited)
