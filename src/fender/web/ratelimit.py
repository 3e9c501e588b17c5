"""Rate limiting over HTTP: who the client is, which limits apply, 429s and headers.

The limits of a route are resolved once, at start-up, into a :class:`RoutePlan`: a
``@rate_limit(...)`` decorator on the endpoint wins, then the route's entry in
``FENDER_RATE_LIMIT_PATHS``, then the default (``FENDER_RATE_LIMIT``, per client ip and route;
per client ip alone where only raw paths are known).
The per-request path resolves the client (trusted proxies only), builds the storage keys, asks
the tiered limiter once, and either answers 429 or adds the headers to the response.

Where the route is known decides how it plugs in:

* Starlette and FastAPI route *after* any middleware runs, so :func:`apply_to_starlette`
  wraps each route's own ASGI app (every leaf :func:`~fender.web.routes.walk` finds: mounts
  and included routers too, each inclusion apart), which knows its template and its plan;
* Flask routes before ``before_request`` hooks run: :func:`apply_to_flask` uses them;
* any other ASGI or WSGI app: :class:`RateLimitMiddleware` / :class:`RateLimitWSGI`. Raw
  paths carry ids (``/items/1``, ``/items/2``...), so the default there is one budget per
  client across all paths; ``FENDER_RATE_LIMIT_PATHS`` entries keep a budget per path.

A 429 carries ``Retry-After`` (whole seconds, rounded up) and the JSON body
``{"error": "rate_limited", "request_id": ..., "retry_after": ...}``. When no store answers
and the fallback is ``closed``, the error is ``rate_limit_unavailable``, still a 429: a 5xx
would page whoever runs the service for every client while the service itself is fine, and
clients already back off on 429 with ``Retry-After``. The limiter never turns a request into
a 500: an unexpected error in it is logged and the request passes.

Example:
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> @app.post("/login")
    ... @rate_limit("5/minute")
    ... async def login() -> dict[str, str]:
    ...     return {}
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Final, Literal, TypeVar

from fender._types import ASGIApp, Message, Receive, Scope, Send, StartResponse, WSGIApp
from fender._types import WSGIEnviron as Environ
from fender.errors import ConfigurationError
from fender.observability.logging import current_request
from fender.ratelimit.clientip import parse_node, rate_limit_key
from fender.ratelimit.config import RateLimitConfig, check_no_burst, policy_name
from fender.ratelimit.limiter import UNAVAILABLE, AsyncTieredLimiter, TieredLimiter
from fender.ratelimit.policy import (
    FALLBACKS,
    Decision,
    FallbackMode,
    KeyBuilder,
    RateLimitPolicy,
    parse_policy,
)
from fender.stores.client import parse_redis_url
from fender.web.access import RESPONSE_HEADERS, forwarding_headers
from fender.web.endpoints import Response, json_response
from fender.web.routes import ROUTE_KEY, RouteMarker, coverage_of, routes_of, walk
from fender.web.wsgi import status_line

__all__ = [
    "RATE_LIMIT_ATTRIBUTE",
    "HttpRateLimit",
    "KeyScope",
    "LimitedRoute",
    "RateLimitMiddleware",
    "RateLimitRequest",
    "RateLimitWSGI",
    "RouteLimit",
    "RoutePlan",
    "apply_to_flask",
    "apply_to_starlette",
    "rate_limit",
]

logger = logging.getLogger("fender.ratelimit")

RATE_LIMIT_ATTRIBUTE: Final = "__fender_rate_limit__"
"""The attribute :func:`rate_limit` sets on an endpoint: a tuple of :class:`RouteLimit`."""

KeyScope = Literal["ip", "user", "route", "global"]
KeyFunction = Callable[["RateLimitRequest"], "str | None"]
F = TypeVar("F", bound=Callable[..., Any])

_SCOPES: Final = ("ip", "user", "route", "global")
_FLASK_STATE: Final = "fender.ratelimit"
_EVERY_PATH: Final = "*"
"""The route of the default limit where only raw paths are known: never a path (no ``/``)."""


@dataclass(frozen=True, slots=True)
class RateLimitRequest:
    """What a key function sees of a request (built only for routes that need one).

    Attributes:
        method: the HTTP method.
        path: the raw path.
        route: the route template (bare ASGI/WSGI apps: a path-table entry's path, else
            ``*``, the default's one budget across paths).
        client: the client address after the trusted proxies.
        headers: request headers, lower-case names (repeated ones joined by ``,``).
        raw: the ASGI scope, the WSGI environ or the Flask request.
    """

    method: str
    path: str
    route: str
    client: str
    headers: Mapping[str, str]
    raw: Any


@dataclass(frozen=True, slots=True)
class RouteLimit:
    """One ``@rate_limit`` mark: a policy, how requests are keyed, what each one costs."""

    rate: str
    policy: RateLimitPolicy
    key: KeyScope | KeyFunction
    cost: int
    name: str | None
    fallback: FallbackMode | None = None


def rate_limit(
    rate: str,
    *,
    key: KeyScope | KeyFunction = "ip",
    cost: int = 1,
    name: str | None = None,
    fallback: FallbackMode | None = None,
) -> Callable[[F], F]:
    """Mark an endpoint (FastAPI, Starlette, Flask view) with its own limit.

    It only sets an attribute; the limit is applied where the app is wired up, and takes
    precedence over ``FENDER_RATE_LIMIT_PATHS`` and the default. Stack several to apply
    several limits at once (all are decided in one Redis call; they must share ``cost``).

    Args:
        rate: e.g. ``"10/minute"``, ``"10/second; 1000/hour"``.
        key: ``"ip"`` (client ip and route, the default), ``"user"`` (the config's
            ``user_key``, ip when anonymous), ``"route"`` (all clients of the route),
            ``"global"`` (all clients of every route with this policy name), or a function of
            :class:`RateLimitRequest` returning a key (None: by ip and route).
        cost: requests each call counts.
        name: the policy name in headers and metrics; default: from the route template.
        fallback: while the shared store does not answer, ``"local"`` (limit in memory with a
            share of the limit), ``"open"`` (admit) or ``"closed"`` (reject: a login or a
            payment route); default: FENDER_RATE_LIMIT_FALLBACK.

    Raises:
        ConfigurationError: a bad rate, key, cost, name or fallback, at import time.
    """
    policy = parse_policy(rate, name=name or "route", field="rate_limit")
    if fallback is not None and fallback not in FALLBACKS:
        raise ConfigurationError("fallback", fallback, " or ".join(FALLBACKS))
    if not callable(key) and key not in _SCOPES:
        raise ConfigurationError("key", key, f"one of {', '.join(_SCOPES)} or a function")
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
        raise ConfigurationError("cost", cost, "an integer >= 1")
    mark = RouteLimit(rate=rate, policy=policy, key=key, cost=cost, name=name, fallback=fallback)

    def decorate(fn: F) -> F:
        marks: tuple[RouteLimit, ...] = getattr(fn, RATE_LIMIT_ATTRIBUTE, ())
        setattr(fn, RATE_LIMIT_ATTRIBUTE, (*marks, mark))
        return fn

    return decorate


@dataclass(frozen=True, slots=True)
class _Rule:
    scope: KeyScope | KeyFunction
    policy: RateLimitPolicy


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The limits of one route, resolved at start-up.

    Attributes:
        rules: each policy with its key scope.
        cost: requests one call counts.
        policy_header: the ``RateLimit-Policy`` value of all the rules.
        needs_request: whether a key function needs a :class:`RateLimitRequest`.
        slot: where the keys of one request meet in one Redis Cluster slot (a script's keys
            must): ``None`` when the rules share one scope (each key is tagged by its own
            identity, spreading clients over the cluster); ``"global"`` when a global limit is
            stacked (its key is one for the whole app, so the others join its slot); ``"key"``
            when a key function's limit is stacked (they join its value's slot); ``"route"``
            when per-route scopes are mixed (ip and user: they meet in the route's slot).
    """

    rules: tuple[_Rule, ...]
    cost: int
    policy_header: str
    needs_request: bool
    slot: Literal["global", "key", "route"] | None = None


class HttpRateLimit:
    """The framework-free HTTP side: plans, client identity, keys, headers, 429 responses.

    Built once per app from a :class:`RateLimitConfig`; the adapters below share it.
    """

    def __init__(self, config: RateLimitConfig) -> None:
        """Precompute the default plan and the path table's plans."""
        self.config = config
        self._keys = KeyBuilder(prefix=config.key_prefix)
        self._resolver = config.resolver
        self.proxies = bool(config.trusted_proxies) or config.trusted_hops > 0
        self._warned_no_peer = False
        self._forwarded = self._resolver.header == "forwarded"
        self._networks: tuple[IPv4Network | IPv6Network, ...] = config.networks
        self._exempt = tuple(prefix.rstrip("/") for prefix in config.exempt)
        # the store's own URL parser decides (validated when the limiter was configured)
        self._on_cluster = (
            bool(config.redis_url) and parse_redis_url(config.redis_url).kind == "cluster"
        )
        self._ietf = config.headers in {"ietf", "both"}
        self._legacy = config.headers in {"legacy", "both"}
        self.default_plan = self._plan((_Rule("ip", config.default),), 1)
        self._path_plans = {
            route: self._plan((_Rule("ip", policy),), 1) for route, policy in config.paths.items()
        }
        # Raw paths are looked up as normal_path() makes them (no trailing slash): an entry
        # written as Django writes its paths (/accounts/login/) must still apply.
        self._raw_path_plans = {
            normal_path(route): plan for route, plan in self._path_plans.items()
        }

    # -- start-up --------------------------------------------------------------------------------

    def _plan(self, rules: tuple[_Rule, ...], cost: int) -> RoutePlan:
        names = [rule.policy.name for rule in rules]
        if len(set(names)) != len(names):
            raise ConfigurationError("name", names, "a distinct policy name per stacked limit")
        return RoutePlan(
            rules=rules,
            cost=cost,
            policy_header=", ".join(rule.policy.policy_header for rule in rules),
            needs_request=any(callable(rule.scope) or rule.scope == "user" for rule in rules),
            slot=self._slot(rules),
        )

    def _slot(self, rules: tuple[_Rule, ...]) -> Literal["global", "key", "route"] | None:
        """See :attr:`RoutePlan.slot`."""
        scopes = {rule.scope for rule in rules}
        if len(scopes) == 1:
            return None
        # Keys shared by routes (a global limit, a key function's) keep one name, and so one
        # slot, on every route: at most one of them can lead a request's slot.
        shared = {scope for scope in scopes if scope == "global" or callable(scope)}
        if len(shared) > 1 and self._on_cluster:
            raise ConfigurationError(
                "rate_limit",
                [rule.policy.name for rule in rules],
                "on Redis Cluster, at most one global or key-function limit per route "
                "(a request's keys must share one slot)",
            )
        if "global" in shared:
            return "global"
        if shared:
            return "key"
        return "route"

    def plan_for(self, route: str, endpoint: object | None = None) -> RoutePlan:
        """The plan of ``route``: the endpoint's decorators, else the path table, else default.

        Raises:
            ConfigurationError: a decorator's limit does not fit the configuration.
        """
        marks: tuple[RouteLimit, ...] = getattr(endpoint, RATE_LIMIT_ATTRIBUTE, ())
        if not marks:
            return self._path_plans.get(route, self.default_plan)
        costs = {mark.cost for mark in marks}
        if len(costs) != 1:
            raise ConfigurationError(
                "cost", sorted(costs), f"one cost for all the limits of {route}"
            )
        base = policy_name(route)
        rules = []
        # Decorators apply bottom-up: reverse, so the first written is the first named.
        for index, mark in enumerate(reversed(marks)):
            name = mark.name or (base if index == 0 else f"{base}.{index + 1}")
            policy = RateLimitPolicy(name=name, limits=mark.policy.limits, fallback=mark.fallback)
            check_no_burst(policy, self.config.algorithm, field="rate_limit", text=mark.rate)
            rules.append(_Rule(mark.key, policy))
        return self._plan(tuple(rules), costs.pop())

    def plan_for_path(self, path: str) -> tuple[str, RoutePlan]:
        """The key route and plan of a raw path (bare ASGI/WSGI apps).

        A path-table entry counts per path; the default counts per client across all paths:
        raw paths carry ids, and a budget per id is never used up.
        """
        plan = self._raw_path_plans.get(path)
        if plan is None:
            return _EVERY_PATH, self.default_plan
        return path, plan

    # -- per request -----------------------------------------------------------------------------

    def exempt(self, path: str) -> bool:
        """True when ``path`` is under an exempt prefix (whole segments)."""
        for prefix in self._exempt:
            if path == prefix or path.startswith(prefix + "/") or not prefix:
                return True
        return False

    def client(self, peer: str | None, xff: str | None, forwarded: str | None) -> str | None:
        """The client's rate-limit identity (IPv6 by /64); None when it is on the allow-list."""
        peer = peer or ""
        if self.proxies:
            ip = self._resolver.resolve(peer, x_forwarded_for=xff, forwarded=forwarded)
        else:
            ip = peer
            if not peer and not self._warned_no_peer:
                self._warned_no_peer = True
                logger.warning(
                    "rate_limit_no_client_address",
                    extra={
                        "why": "requests arrive without a peer address (a unix socket?): "
                        "every client shares one rate-limit identity",
                        "fix": "set FENDER_TRUSTED_PROXIES (or FENDER_TRUSTED_HOPS=1) so that "
                        "the proxy's X-Forwarded-For names the client",
                    },
                )
        if self._networks:
            address = parse_node(ip)
            if address is not None and any(address in net for net in self._networks):
                return None
        return rate_limit_key(ip)

    def items(
        self,
        plan: RoutePlan,
        client: str,
        route: str,
        request: Callable[[], RateLimitRequest] | None = None,
    ) -> list[tuple[str, RateLimitPolicy]]:
        """The ``(storage key, policy)`` pairs of one request."""
        build = self._keys.build
        identities: list[tuple[str, tuple[str, ...], bool]] = []  # tag, parts, per route
        made: RateLimitRequest | None = None
        for rule in plan.rules:
            scope = rule.scope
            name = rule.policy.name
            if scope == "ip":
                identities.append((client, (name, route), True))
            elif scope == "route":
                identities.append((route, (name,), True))
            elif scope == "global":
                identities.append(("global", (name,), False))
            else:
                if made is None and request is not None:
                    made = request()
                value = None if made is None else self._value(scope, made)
                if value is None:  # anonymous: by client ip and route
                    identities.append((client, (name, route), True))
                elif scope == "user":
                    identities.append((value, (name, route), True))
                else:
                    identities.append((value, (name,), False))
        if plan.slot is None:
            return [
                (build(tag, *parts), rule.policy)
                for (tag, parts, _), rule in zip(identities, plan.rules, strict=True)
            ]
        # One slot for the request: keys shared across routes keep their own tag (the same on
        # every route); per-route keys move into the leader's slot, their identity a part.
        leader = route
        if plan.slot != "route":
            leader = next((tag for tag, _, per_route in identities if not per_route), route)
        return [
            (build(leader, tag, *parts) if per_route else build(tag, *parts), rule.policy)
            for (tag, parts, per_route), rule in zip(identities, plan.rules, strict=True)
        ]

    def _value(self, scope: KeyScope | KeyFunction, request: RateLimitRequest) -> str | None:
        function = self.config.user_key if scope == "user" else scope
        if function is None or isinstance(function, str):
            return None
        value = function(request)
        return None if value is None else str(value)

    def headers(self, plan: RoutePlan, decision: Decision) -> list[tuple[str, str]]:
        """The rate-limit headers of a response (without ``Retry-After``)."""
        return [(name.decode(), value.decode()) for name, value in self.raw_headers(plan, decision)]

    def raw_headers(self, plan: RoutePlan, decision: Decision) -> list[tuple[bytes, bytes]]:
        """:meth:`headers` as ASGI wants them: lower-case names, latin-1 bytes."""
        headers: list[tuple[bytes, bytes]] = []
        counted = decision.reason != UNAVAILABLE
        if self._ietf:
            headers.append((b"ratelimit-policy", plan.policy_header.encode("latin-1")))
            if counted:
                headers.append((b"ratelimit", decision.header_value().encode("latin-1")))
        if self._legacy and counted:
            headers.append((b"x-ratelimit-limit", b"%d" % decision.limit))
            headers.append((b"x-ratelimit-remaining", b"%d" % decision.remaining))
            headers.append((b"x-ratelimit-reset", b"%d" % math.ceil(decision.reset_after)))
        return headers

    def rejection(
        self, plan: RoutePlan, decision: Decision, request_id: str | None = None
    ) -> Response:
        """The 429 response for a rejected request."""
        headers = self.headers(plan, decision)
        retry = decision.retry_after_header()
        if retry is not None:
            headers.append(("Retry-After", retry))
        if request_id is None:
            context = current_request()
            request_id = context.request_id if context else None
        error = "rate_limit_unavailable" if decision.reason == UNAVAILABLE else "rate_limited"
        return json_response(
            429,
            {
                "error": error,
                "request_id": request_id,
                "retry_after": None if retry is None else int(retry),
            },
            headers=tuple(headers),
        )


# -- ASGI ------------------------------------------------------------------------------------------


def _scope_request(scope: Scope, route: str, client: str) -> RateLimitRequest:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return RateLimitRequest(scope["method"], scope["path"], route, client, headers, scope)


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def normal_path(path: str) -> str:
    """A raw path as a limit key: ``//login/`` counts as ``/login`` (no free bucket per form)."""
    if "//" in path or (path.endswith("/") and len(path) > 1):
        path = "/" + "/".join(part for part in path.split("/") if part)
    return path


async def _limit_asgi(  # noqa: PLR0917  (positional: once per request)
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
        xff, forwarded = forwarding_headers(scope) if http.proxies else (None, None)
        client = http.client(peer[0] if peer else None, xff, forwarded)
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
                    *_encode(rejection.headers),
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

    :func:`apply_to_starlette` puts it in ``route.app``, which ``Route.handle`` awaits once
    routing has matched, so the template and the endpoint's decorators are known here. Like
    the :class:`~fender.web.routes.RouteMarker` it is, it records the template in the scope.
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
        await _limit_asgi(
            self.http, self.limiter, self.plan, self.template, self.app, scope, receive, send
        )


def apply_to_starlette(
    app: Any, limiter: AsyncTieredLimiter, config: RateLimitConfig | None = None
) -> int:
    """Put every HTTP route of a Starlette or FastAPI ``app`` behind its limits.

    Wraps the ASGI app of each leaf :func:`~fender.web.routes.walk` finds (routes, mounted
    routers and apps, hosts, FastAPI's included routers once per inclusion) in a
    :class:`LimitedRoute`; with limits disabled, in a :class:`~fender.web.routes.RouteMarker`,
    so that metrics and logs name the full template in every configuration. Idempotent (a
    wrapped app is never wrapped again; a marker becomes a limiter once limits are enabled):
    call it again from the app's startup so that routes added after install are covered, and
    a request answered by a route without a wrapper calls it again (see
    :func:`~fender.web.routes.report_unmarked`).

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
        await _limit_asgi(self.http, self.limiter, plan, route, self.app, scope, receive, send)


# -- WSGI and Flask --------------------------------------------------------------------------------


def _environ_headers(environ: Environ) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return headers


def _limit_sync(
    *,
    http: HttpRateLimit,
    limiter: TieredLimiter,
    plan: RoutePlan,
    route: str,
    environ: Environ,
    raw: Any,
) -> tuple[Decision, list[tuple[str, str]]] | None:
    """Decide one WSGI request; None when it is not limited (allow-listed, or a limiter bug)."""
    try:
        client = http.client(
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_X_FORWARDED_FOR"),
            environ.get("HTTP_FORWARDED"),
        )
        if client is None:
            return None

        def make() -> RateLimitRequest:
            return RateLimitRequest(
                str(environ.get("REQUEST_METHOD", "GET")),
                str(environ.get("PATH_INFO", "")),
                route,
                client,
                _environ_headers(environ),
                raw,
            )

        items = http.items(plan, client, route, make if plan.needs_request else None)
        decision = limiter.decide(items, plan.cost)
        return decision, http.headers(plan, decision)
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
        outcome = _limit_sync(
            http=self.http,
            limiter=self.limiter,
            plan=plan,
            route=route,
            environ=environ,
            raw=environ,
        )
        if outcome is None:
            return self.app(environ, start_response)
        decision, extra = outcome
        if not decision.allowed:
            response = self.http.rejection(plan, decision, environ.get("fender.request_id"))
            start_response(status_line(response.status), list(response.headers))
            return [response.body]

        def start_limited(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [*headers, *extra]  # a copy: the app may reuse its list
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, start_limited)


class _FlaskLimit:
    """The Flask hooks of :func:`apply_to_flask`, with the plans of the endpoints seen."""

    def __init__(self, app: Any, limiter: TieredLimiter, http: HttpRateLimit) -> None:
        self.app = app
        self.limiter = limiter
        self.http = http
        self.plans: dict[tuple[str, str], tuple[str, RoutePlan]] = {}
        for rule in app.url_map.iter_rules():  # fail at start-up on a bad decorator
            self.plan_of(rule.endpoint, rule.rule)

    def plan_of(self, endpoint: str, rule: str) -> tuple[str, RoutePlan]:
        found = self.plans.get((endpoint, rule))
        if found is None:
            from fender.web.observe import template_of_rule

            route = template_of_rule(rule)
            found = (route, self.http.plan_for(route, self.app.view_functions.get(endpoint)))
            self.plans[endpoint, rule] = found
        return found

    def before(self) -> Any:
        from flask import request

        rule = request.url_rule
        if rule is None or request.endpoint is None or self.http.exempt(request.path):
            return None
        route, plan = self.plan_of(request.endpoint, rule.rule)
        environ = request.environ
        outcome = _limit_sync(
            http=self.http,
            limiter=self.limiter,
            plan=plan,
            route=route,
            environ=environ,
            raw=request,
        )
        if outcome is None:
            return None
        decision, extra = outcome
        if decision.allowed:
            environ[_FLASK_STATE] = extra
            return None
        response = self.http.rejection(plan, decision, environ.get("fender.request_id"))
        return response.body, response.status, list(response.headers)

    def after(self, response: Any) -> Any:
        from flask import request

        extra = request.environ.pop(_FLASK_STATE, None)
        if extra:
            for name, value in extra:
                response.headers[name] = value
        return response


def apply_to_flask(app: Any, limiter: TieredLimiter, config: RateLimitConfig | None = None) -> None:
    """Limit every view of a Flask ``app`` (decorators, path table, default); idempotent.

    A ``before_request`` hook (which runs after routing, so the rule and the view are known)
    answers the 429; an ``after_request`` hook adds the headers. Unmatched paths (404) are
    not limited. The plans of the rules present are resolved now, later ones on first use.

    Raises:
        ConfigurationError: a decorator's limit does not fit the configuration.
    """
    config = limiter.core.config if config is None else config
    if not config.enabled or _FLASK_STATE in app.extensions:
        return
    hooks = _FlaskLimit(app, limiter, HttpRateLimit(config))
    app.extensions[_FLASK_STATE] = hooks
    app.before_request(hooks.before)
    app.after_request(hooks.after)
