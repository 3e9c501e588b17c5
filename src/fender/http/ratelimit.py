"""Rate limiting over HTTP: who the client is, which limits apply, 429s and headers.

The limits of a route are resolved once, at start-up, into a :class:`RoutePlan`: a
``@rate_limit(...)`` decorator on the endpoint wins, then the route's entry in
``FENDER_RATE_LIMIT_PATHS``, then the default (``FENDER_RATE_LIMIT``, per client ip and route;
per client ip alone where only raw paths are known).
The per-request path resolves the client (trusted proxies only), builds the storage keys, asks
the tiered limiter once, and either answers 429 or adds the headers to the response.

This module is the framework-free core (:class:`HttpRateLimit`); where the route is known
decides which shell drives it: each Starlette route's own app
(:mod:`fender.frameworks.starlette`), Flask's ``before_request`` hook
(:mod:`fender.frameworks.flask`), or, for any other ASGI or WSGI app, the middleware of raw
paths (:mod:`fender.middleware.asgi.ratelimit`, :mod:`fender.middleware.wsgi.ratelimit`). Raw
paths carry ids (``/items/1``, ``/items/2``...), so the default there is one budget per
client across all paths; ``FENDER_RATE_LIMIT_PATHS`` entries keep a budget per path.

Rejections are observed too: past FENDER_SECURITY_EVENT_THRESHOLD rejections of one key within
a minute, one ``rate_limit_abuse`` security event for that key and minute
(:class:`RejectionWatch`).

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
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Final, Literal, TypeVar

from fender._clock import Clock, monotonic
from fender._http import Forwarding
from fender.errors import ConfigurationError
from fender.http.endpoints import Response, json_response
from fender.observability._logging import current_request
from fender.ratelimit._clientip import parse_node, rate_limit_key
from fender.ratelimit._config import RateLimitConfig, check_no_burst, policy_name
from fender.ratelimit._policy import (
    FALLBACKS,
    Decision,
    FallbackMode,
    KeyBuilder,
    RateLimitPolicy,
    parse_policy,
)
from fender.ratelimit._tiers import UNAVAILABLE
from fender.security._events import security_event
from fender.stores._url import parse_redis_url

__all__ = [
    "EVERY_PATH",
    "RATE_LIMIT_ATTRIBUTE",
    "HttpRateLimit",
    "KeyScope",
    "RateLimitRequest",
    "RejectionWatch",
    "RouteLimit",
    "RoutePlan",
    "normal_path",
    "rate_limit",
]

logger = logging.getLogger("fender.ratelimit")

RATE_LIMIT_ATTRIBUTE: Final = "__fender_rate_limit__"
"""The attribute :func:`rate_limit` sets on an endpoint: a tuple of :class:`RouteLimit`."""

KeyScope = Literal["ip", "user", "route", "global"]
_Items = list[tuple[str, "RateLimitPolicy"]]
ITEMS_REMEMBERED: Final = 1024
"""Client and route pairs whose storage keys :meth:`HttpRateLimit.items` keeps (per app)."""
KeyFunction = Callable[["RateLimitRequest"], "str | None"]
F = TypeVar("F", bound=Callable[..., Any])

_SCOPES: Final = ("ip", "user", "route", "global")
EVERY_PATH: Final = "*"
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
    exact: bool = False


def rate_limit(
    rate: str,
    *,
    key: KeyScope | KeyFunction = "ip",
    cost: int = 1,
    name: str | None = None,
    fallback: FallbackMode | None = None,
    exact: bool = False,
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
        exact: decide every request of this limit in Redis even in lease mode
            (FENDER_RATE_LIMIT_MODE=lease, the default): one round trip a request, never over
            the limit. For limits that must hold to the request: logins, OTPs, paid quotas.

    Raises:
        ConfigurationError: a bad rate, key, cost, name, fallback or exact, at import time.
    """
    policy = parse_policy(rate, name=name or "route", field="rate_limit")
    if fallback is not None and fallback not in FALLBACKS:
        raise ConfigurationError("fallback", fallback, " or ".join(FALLBACKS))
    if not callable(key) and key not in _SCOPES:
        raise ConfigurationError("key", key, f"one of {', '.join(_SCOPES)} or a function")
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
        raise ConfigurationError("cost", cost, "an integer >= 1")
    if not isinstance(exact, bool):
        raise ConfigurationError("exact", exact, "True or False")
    mark = RouteLimit(
        rate=rate, policy=policy, key=key, cost=cost, name=name, fallback=fallback, exact=exact
    )

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
    # The RateLimit-Policy header as ASGI sends it, encoded once rather than per request.
    policy_item: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Encode the ``RateLimit-Policy`` header once."""
        item = (b"ratelimit-policy", self.policy_header.encode("latin-1"))
        object.__setattr__(self, "policy_item", item)


class RejectionWatch:
    """Counts rejections per key and minute; says when a key reaches the threshold.

    One event per key and minute however many rejections follow, and bounded memory: the
    counts are of the current minute only, for at most ``max_keys`` keys (later keys of a
    minute are not counted: a flood of distinct keys is not one key's abuse).
    """

    __slots__ = ("_clock", "_counts", "_lock", "_max_keys", "_minute", "threshold")

    def __init__(self, threshold: int, *, clock: Clock = monotonic, max_keys: int = 10_000) -> None:
        """Watch for ``threshold`` rejections of one key in a minute."""
        self.threshold = threshold
        self._clock = clock
        self._max_keys = max_keys
        self._minute = -1
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def rejected(self, key: str) -> bool:
        """Count a rejection of ``key``; True exactly when it reaches the threshold."""
        minute = int(self._clock() // 60)
        with self._lock:
            if minute != self._minute:
                self._minute = minute
                self._counts.clear()
            counts = self._counts
            count = counts.get(key)
            if count is None:
                if len(counts) >= self._max_keys:
                    return False
                count = 0
            counts[key] = count = count + 1
        return count == self.threshold


class HttpRateLimit:
    """The framework-free HTTP side: plans, client identity, keys, headers, 429 responses.

    Built once per app from a :class:`RateLimitConfig`; the shells of each protocol drive it.
    """

    def __init__(self, config: RateLimitConfig) -> None:
        """Precompute the default plan and the path table's plans."""
        self.config = config
        self.watch = RejectionWatch(config.abuse_threshold)
        self._keys = KeyBuilder(prefix=config.key_prefix)
        self._resolver = config.resolver
        self.proxies = bool(config.trusted_proxies) or config.trusted_hops > 0
        self._warned_no_peer = False
        self._forwarded = self._resolver.header == "forwarded"
        self._networks: tuple[IPv4Network | IPv6Network, ...] = config.networks
        exempt = tuple(prefix.rstrip("/") for prefix in config.exempt)
        # Whole segments: the prefix itself, or under "prefix/"; "" (was "/") exempts all.
        self._exempt_all = "" in exempt
        self._exempt_paths = frozenset(exempt)
        self._exempt_under = tuple(f"{prefix}/" for prefix in exempt)
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
        # The keys of a plan without key functions depend on the client and route alone:
        # built once per client and route seen lately, not on every request (see items()).
        self._items: dict[tuple[int, str, str], tuple[RoutePlan, _Items]] = {}

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
            policy = RateLimitPolicy(
                name=name, limits=mark.policy.limits, fallback=mark.fallback, exact=mark.exact
            )
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
            return EVERY_PATH, self.default_plan
        return path, plan

    # -- per request -----------------------------------------------------------------------------

    def exempt(self, path: str) -> bool:
        """True when ``path`` is under an exempt prefix (whole segments)."""
        # (one set lookup and one startswith over a tuple: no loop per request)
        return self._exempt_all or path in self._exempt_paths or path.startswith(self._exempt_under)

    def client(self, peer: str | None, forwarding: Forwarding | None) -> str | None:
        """The client's rate-limit identity (IPv6 by /64); None when it is on the allow-list.

        ``forwarding``: the request's forwarding headers, resolved through the trusted proxies;
        None when the edge resolved them already (``peer`` is then the effective client). A
        request whose proxy chain is missing or unusable is counted as its peer (the proxy):
        it shares the proxy's budget, and never gets one of its own choosing.
        """
        peer = peer or ""
        if self.proxies:
            ip = (
                peer
                if forwarding is None
                else self._resolver.resolve_request(peer, forwarding).address
            )
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
        """The ``(storage key, policy)`` pairs of one request.

        Without a key function they depend on the client and route alone: the same list is
        returned again for them (do not change it).
        """
        if plan.needs_request:
            return self._build_items(plan, client, route, request)
        remembered = (id(plan), client, route)
        found = self._items.get(remembered)
        if found is not None and found[0] is plan:
            return found[1]
        items = self._build_items(plan, client, route, None)
        if len(self._items) >= ITEMS_REMEMBERED:
            self._items.clear()  # (many clients: start over, cheaper than an LRU per hit)
        self._items[remembered] = (plan, items)
        return items

    def _build_items(
        self,
        plan: RoutePlan,
        client: str,
        route: str,
        request: Callable[[], RateLimitRequest] | None,
    ) -> _Items:
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
            headers.append(plan.policy_item)
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
        """The 429 response for a rejected request (observed: see :class:`RejectionWatch`)."""
        if decision.reason != UNAVAILABLE and self.watch.rejected(decision.key):
            security_event(
                "rate_limit_abuse",
                key=decision.key,
                policy=decision.policy,
                rejections=self.watch.threshold,
                window_seconds=60,
            )
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


def normal_path(path: str) -> str:
    """A raw path as a limit key: ``//login/`` counts as ``/login`` (no free bucket per form)."""
    if "//" in path or (path.endswith("/") and len(path) > 1):
        path = "/" + "/".join(part for part in path.split("/") if part)
    return path
