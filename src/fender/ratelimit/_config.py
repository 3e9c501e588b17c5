"""The rate-limit configuration: every setting parsed and checked once, at start-up.

:class:`RateLimitConfig` is a frozen snapshot built from :class:`~fender.settings.Settings`
(:meth:`RateLimitConfig.from_settings`) or by hand. The per-request path only reads it: the
policies are parsed, the CIDRs are networks, the proxy resolver is built. A bad value raises
:class:`~fender.errors.ConfigurationError` naming the environment variable and the value.

Example:
    >>> from fender.settings import load_settings
    >>> settings = load_settings(
    ...     {"FENDER_RATE_LIMIT": "100/minute", "FENDER_RATE_LIMIT_PATHS": "/login=5/minute"},
    ...     env_file=None,
    ... )
    >>> config = RateLimitConfig.from_settings(settings)
    >>> config.paths["/login"].policy_header
    '"/login";q=5;w=60'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from types import MappingProxyType
from typing import Any, Final, Literal
from urllib.parse import quote

from fender.errors import ConfigurationError
from fender.ratelimit._clientip import ClientIPResolver
from fender.ratelimit._policy import (
    FALLBACKS,
    Algorithm,
    FallbackMode,
    RateLimitPolicy,
    parse_policy,
)
from fender.settings import Settings, env_name, field_default

__all__ = [
    "FallbackMode",
    "HeadersMode",
    "RateLimitConfig",
    "UserKey",
    "check_no_burst",
    "policy_name",
    "service_prefix",
]

HeadersMode = Literal["ietf", "legacy", "both", "none"]
UserKey = Callable[[Any], "str | None"]
"""Returns the user id of a request (None: anonymous, limited by client ip instead)."""

_HEADERS: Final = ("ietf", "legacy", "both", "none")
# Config field -> the settings field it is built from. Defaults and environment names are the
# settings fields' own (field_default, env_name): declared once, in fender.settings.
_SETTING_FIELDS: Final = MappingProxyType(
    {
        "enabled": "rate_limit_enabled",
        "default": "rate_limit",
        "algorithm": "rate_limit_algorithm",
        "headers": "rate_limit_headers",
        "fallback": "rate_limit_fallback",
        "slack": "rate_limit_slack",
        "timeout": "rate_limit_timeout_ms",
        "allow": "rate_limit_allow",
        "exempt": "rate_limit_exempt",
        "paths": "rate_limit_paths",
        "instances": "instances",
        "trusted_proxies": "trusted_proxies",
        "trusted_hops": "trusted_hops",
        "redis_url": "redis_url",
        "abuse_threshold": "security_event_threshold",
    }
)
# Config field -> its environment name, for errors raised while building from settings.
ENV_NAMES: Final = MappingProxyType({key: env_name(f) for key, f in _SETTING_FIELDS.items()})
_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.:/-]")
_MS: Final = 1000
# The defaults of the fields built from settings: the settings fields' own.
_DEFAULT_POLICY: Final = parse_policy(field_default("rate_limit"))
_DEFAULT_ENABLED: Final[bool] = field_default("rate_limit_enabled")
_DEFAULT_ALGORITHM: Final = Algorithm(field_default("rate_limit_algorithm"))
_DEFAULT_HEADERS: Final[HeadersMode] = field_default("rate_limit_headers")
_DEFAULT_FALLBACK: Final[FallbackMode] = field_default("rate_limit_fallback")
_DEFAULT_SLACK: Final[float] = field_default("rate_limit_slack")
_DEFAULT_TIMEOUT: Final[float] = field_default("rate_limit_timeout_ms") / _MS
_DEFAULT_ABUSE: Final[int] = field_default("security_event_threshold")


def policy_name(route: str) -> str:
    """A policy name for a route template: ``/items/{item_id}`` -> ``/items/item_id``.

    Policy names appear in headers and metric labels, so only ``[A-Za-z0-9_.:/-]`` is kept.
    """
    name = _NAME_UNSAFE.sub("", route.replace("{", "").replace("}", ""))[:64]
    return name or "route"


def check_no_burst(policy: RateLimitPolicy, algorithm: Algorithm, *, field: str, text: str) -> None:
    """Reject a ``burst`` under the sliding window, which would silently ignore it."""
    if algorithm is Algorithm.SLIDING_WINDOW and any(
        limit.burst != limit.count for limit in policy.limits
    ):
        raise ConfigurationError(
            field,
            text,
            "a rate without 'burst': the sliding-window algorithm "
            "(FENDER_RATE_LIMIT_ALGORITHM=sliding) has no burst and would ignore it; "
            "drop the burst or use gcra",
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimitConfig:
    """What the rate limiter enforces and how it degrades; immutable, validated when built.

    Attributes:
        enabled: rate-limit requests at all.
        default: the policy of every route without its own (per client ip and route).
        algorithm: GCRA (rate plus burst) or the sliding-window counter.
        paths: per-route policies by route template (``FENDER_RATE_LIMIT_PATHS``); a
            ``rate_limit`` decorator on the endpoint still wins.
        allow: CIDRs (or addresses) never limited.
        exempt: path prefixes never limited (whole segments: ``/static`` covers
            ``/static/app.js``, not ``/statics``).
        trusted_proxies: CIDRs of our proxies, whose ``X-Forwarded-For`` is believed.
        trusted_hops: instead: the number of proxies in front of the app (0: off).
        headers: ``ietf`` (``RateLimit``, ``RateLimit-Policy``), ``legacy``
            (``X-RateLimit-*``), ``both`` or ``none``.
        fallback: when Redis does not answer: ``local`` (limit in memory with a share of
            each limit), ``open`` (admit) or ``closed`` (reject with 429).
        slack: the local share is ``ceil(limit / instances) * slack``.
        timeout: seconds a Redis decision may take before the fallback decides.
        instances: worker processes sharing the limits; None counts them by heartbeat.
        redis_url: the Redis of the shared limits; empty keeps them in memory (per process).
        key_prefix: prefix of every storage key; from settings, one per service
            (:func:`service_prefix`).
        user_key: returns the user id of a request, for the ``user`` key scope.
        max_keys: limit states the memory tier keeps (LRU).
        trip_after: consecutive Redis failures that switch to the fallback. 1 by default:
            each failure costs a request up to ``timeout``, while a needless switch costs
            only about a second of local limits.
        recovery_timeout: seconds after a failed probe before Redis is probed again.
        probe_interval: seconds between background steps while on the fallback.
        heartbeat_interval: seconds between instance heartbeats while Redis answers.
        abuse_threshold: rejections of one key within a minute that make a
            ``rate_limit_abuse`` security event (one per key and minute).
    """

    enabled: bool = _DEFAULT_ENABLED
    default: RateLimitPolicy = _DEFAULT_POLICY
    algorithm: Algorithm = _DEFAULT_ALGORITHM
    paths: Mapping[str, RateLimitPolicy] = field(default_factory=dict)
    allow: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    trusted_hops: int = 0
    headers: HeadersMode = _DEFAULT_HEADERS
    fallback: FallbackMode = _DEFAULT_FALLBACK
    slack: float = _DEFAULT_SLACK
    timeout: float = _DEFAULT_TIMEOUT
    instances: int | None = None
    redis_url: str = ""
    key_prefix: str = "fender:rl"
    user_key: UserKey | None = None
    max_keys: int = 100_000
    trip_after: int = 1
    recovery_timeout: float = 0.5
    probe_interval: float = 0.2
    heartbeat_interval: float = 2.0
    abuse_threshold: int = _DEFAULT_ABUSE
    networks: tuple[IPv4Network | IPv6Network, ...] = field(init=False, repr=False)
    resolver: ClientIPResolver = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Validate every field; derive the allow-list networks and the ip resolver."""
        try:
            object.__setattr__(self, "algorithm", Algorithm(self.algorithm))
        except ValueError:
            raise ConfigurationError("algorithm", self.algorithm, '"gcra" or "sliding"') from None
        if not isinstance(self.default, RateLimitPolicy):
            raise ConfigurationError("default", self.default, "a RateLimitPolicy")
        check_no_burst(self.default, self.algorithm, field="default", text=str(self.default))
        paths = dict(self.paths)
        for route, policy in paths.items():
            if not isinstance(route, str) or not route.startswith("/"):
                raise ConfigurationError("paths", route, "route templates starting with /")
            if not isinstance(policy, RateLimitPolicy):
                raise ConfigurationError("paths", policy, "a RateLimitPolicy per route")
            check_no_burst(policy, self.algorithm, field="paths", text=f"{route}={policy}")
        object.__setattr__(self, "paths", MappingProxyType(paths))
        self._check_choices()
        self._check_numbers()
        networks = []
        for cidr in self.allow:
            try:
                networks.append(ip_network(cidr.strip(), strict=False))
            except (ValueError, AttributeError):
                raise ConfigurationError(
                    "allow", cidr, "ips or CIDRs such as 10.0.0.0/8 or 2001:db8::/32"
                ) from None
        object.__setattr__(self, "networks", tuple(networks))
        for prefix in self.exempt:
            if not isinstance(prefix, str) or not prefix.startswith("/"):
                raise ConfigurationError("exempt", prefix, "path prefixes starting with /")
        object.__setattr__(
            self,
            "resolver",
            ClientIPResolver(
                trusted_proxies=tuple(self.trusted_proxies), trusted_hops=self.trusted_hops
            ),
        )

    def _check_choices(self) -> None:
        if self.headers not in _HEADERS:
            raise ConfigurationError("headers", self.headers, " or ".join(_HEADERS))
        if self.fallback not in FALLBACKS:
            raise ConfigurationError("fallback", self.fallback, " or ".join(FALLBACKS))
        if self.user_key is not None and not callable(self.user_key):
            raise ConfigurationError("user_key", self.user_key, "a callable taking the request")
        if not isinstance(self.redis_url, str):
            raise ConfigurationError("redis_url", self.redis_url, "a redis:// URL or empty")

    def _check_numbers(self) -> None:
        if not _is_number(self.slack) or not 1.0 <= self.slack <= 10.0:  # noqa: PLR2004  (the documented range)
            raise ConfigurationError("slack", self.slack, "a number from 1 to 10")
        for name in ("timeout", "recovery_timeout", "probe_interval", "heartbeat_interval"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0:
                raise ConfigurationError(name, value, "a number of seconds > 0")
        for name in ("max_keys", "trip_after", "abuse_threshold"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(name, value, "an integer >= 1")
        if self.instances is not None and (
            not isinstance(self.instances, int) or isinstance(self.instances, bool)
        ):
            raise ConfigurationError("instances", self.instances, "an integer >= 1 or None")
        if self.instances is not None and self.instances < 1:
            raise ConfigurationError("instances", self.instances, "an integer >= 1 or None")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RateLimitConfig:
        """Build the configuration from ``settings``; ``overrides`` set fields directly.

        Raises:
            ConfigurationError: naming the environment variable (``FENDER_RATE_LIMIT``...)
                and its value.
        """
        algorithm = Algorithm(settings.rate_limit_algorithm)
        default = parse_policy(settings.rate_limit, field="FENDER_RATE_LIMIT")
        check_no_burst(default, algorithm, field="FENDER_RATE_LIMIT", text=settings.rate_limit)
        fields: dict[str, Any] = {
            "enabled": settings.rate_limit_enabled,
            "default": default,
            "algorithm": algorithm,
            "paths": parse_paths(settings.rate_limit_paths, algorithm),
            "allow": _split(settings.rate_limit_allow),
            "exempt": _split(settings.rate_limit_exempt),
            "trusted_proxies": _split(settings.trusted_proxies),
            "trusted_hops": settings.trusted_hops or 0,
            "headers": settings.rate_limit_headers,
            "fallback": settings.rate_limit_fallback,
            "slack": settings.rate_limit_slack,
            "timeout": settings.rate_limit_timeout_ms / _MS,
            "instances": settings.instances,
            "redis_url": settings.redis_url,
            "key_prefix": service_prefix(settings.service_name),
            "abuse_threshold": settings.security_event_threshold,
        }
        fields.update(overrides)
        try:
            return cls(**fields)
        except ConfigurationError as exc:
            env = ENV_NAMES.get(exc.field)
            if env is None or exc.field in overrides:
                raise
            value = getattr(settings, _SETTING_FIELDS.get(exc.field, ""), exc.value)
            secret = exc.field == "redis_url"
            raise ConfigurationError(env, value, exc.expected, secret=secret) from exc


def service_prefix(service: str) -> str:
    """The storage key prefix of a service: ``fender:rl:<FENDER_SERVICE_NAME>``.

    Services sharing one Redis database then share neither buckets nor the instance count
    (the heartbeat key is under the prefix too). The name is percent-encoded: no ``{``, ``}``
    (a Cluster hash tag) or ``:`` of it can change the key's shape.

    Example:
        >>> service_prefix("billing-api")
        'fender:rl:billing-api'
    """
    return f"fender:rl:{quote(service, safe='-._~')}"


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_paths(
    text: str, algorithm: Algorithm = Algorithm.GCRA, *, field: str = "FENDER_RATE_LIMIT_PATHS"
) -> dict[str, RateLimitPolicy]:
    """Parse ``'/login=5/minute|/search=30/minute'`` into policies by route template.

    Each policy is named after its route (:func:`policy_name`).

    Raises:
        ConfigurationError: naming ``field`` and the whole value.
    """
    paths: dict[str, RateLimitPolicy] = {}
    expected = "'route=limit' pairs separated by '|', e.g. '/login=5/minute|/search=30/minute'"
    for entry in text.split("|"):
        if not entry.strip():
            continue
        route, sep, rate = entry.partition("=")
        route = route.strip()
        if not sep or not route.startswith("/") or not rate.strip():
            raise ConfigurationError(field, text, expected)
        if route in paths:
            raise ConfigurationError(field, text, f"{expected}; {route} appears twice")
        try:
            policy = parse_policy(rate.strip(), name=policy_name(route), field=field)
        except ConfigurationError as exc:
            raise ConfigurationError(field, text, f"{expected}; {exc.expected}") from exc
        check_no_burst(policy, algorithm, field=field, text=text)
        paths[route] = policy
    return paths
