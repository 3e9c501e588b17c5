"""CORS (pure): which browser origins may call the API, built and validated once at start-up.

The rules browsers enforce are checked when the policy is built, not discovered in a browser's
console: ``*`` with credentials is refused (browsers ignore such answers), each origin must be
``scheme://host[:port]`` (no path, no trailing slash, not ``null``), methods and headers must
be HTTP tokens. Per request only precomputed header tuples are returned; the answer echoes
the request's ``Origin`` (with ``Vary: Origin``), except for ``*`` without credentials.

Example:
    >>> cors = CorsPolicy.parse("https://app.example.com")
    >>> cors.preflight("https://app.example.com", "PUT", "content-type")[0]
    'ok'
    >>> cors.preflight("https://evil.example", "PUT", "")[0]
    'origin'
    >>> dict(cors.actual("https://app.example.com"))["access-control-allow-origin"]
    'https://app.example.com'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from fender.errors import ConfigurationError
from fender.security._hosts import host_name

if TYPE_CHECKING:
    from fender.settings import Settings

__all__ = ["CorsPolicy", "PreflightOutcome"]

PreflightOutcome = Literal["ok", "origin", "method", "headers"]
"""``ok``, or what a preflight asked for that is not allowed."""

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ORIGIN: Final = re.compile(r"(https?)://([^/?#@\s]+)")
_DEFAULT_PORTS: Final = {"http": ":80", "https": ":443"}
# Methods a browser never needs allowed by name, and request headers it may send unasked.
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "POST"})
_SAFE_HEADERS: Final = frozenset({"accept", "accept-language", "content-language"})
_VARY: Final = ("vary", "Origin")


def _origin(entry: str) -> str:
    """``entry`` as a browser serializes an origin: lower-case, no default port."""
    match = _ORIGIN.fullmatch(entry.strip().lower())
    if match is None or host_name(match.group(2)) is None:
        raise ConfigurationError(
            "FENDER_CORS_ORIGINS",
            entry,
            "origins such as https://app.example.com or http://localhost:3000 "
            "(scheme://host[:port], no path, no trailing slash), or * alone",
        )
    scheme, netloc = match.groups()
    return f"{scheme}://{netloc.removesuffix(_DEFAULT_PORTS[scheme])}"


def _tokens(value: str, variable: str) -> tuple[str, ...]:
    entries = tuple(entry.strip() for entry in value.split(",") if entry.strip())
    for entry in entries:
        if not _TOKEN.fullmatch(entry):
            raise ConfigurationError(variable, entry, "comma-separated HTTP tokens")
    return entries


@dataclass(frozen=True, kw_only=True, slots=True)
class CorsPolicy:
    """The CORS answers of one service.

    Args:
        origins: allowed origins (``scheme://host[:port]``), or ``("*",)`` for any.
        methods: methods allowed in preflights (GET, HEAD and POST always are); ``*``: any.
        headers: request headers allowed in preflights (case-insensitive); ``*``: any.
        expose_headers: response headers scripts may read.
        credentials: send ``Access-Control-Allow-Credentials: true`` (never with ``*``).
        max_age: seconds a browser may cache a preflight answer.
    """

    origins: tuple[str, ...]
    methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
    headers: tuple[str, ...] = ("Authorization", "Content-Type", "X-Request-ID")
    expose_headers: tuple[str, ...] = ()
    credentials: bool = False
    max_age: int = 600
    any_origin: bool = field(init=False)
    _allowed: frozenset[str] = field(init=False, repr=False)
    _headers: frozenset[str] = field(init=False, repr=False)
    _preflight: tuple[tuple[str, str], ...] = field(init=False, repr=False)
    _actual: tuple[tuple[str, str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Validate as browsers judge, and precompute the answers."""
        origins = tuple(self.origins)
        any_origin = "*" in origins
        if any_origin and len(origins) > 1:
            raise ConfigurationError(
                "FENDER_CORS_ORIGINS", ",".join(origins), "* alone, or origins"
            )
        if any_origin and self.credentials:
            raise ConfigurationError(
                "FENDER_CORS_CREDENTIALS",
                self.credentials,
                "false with FENDER_CORS_ORIGINS=* (browsers ignore credentials with a wildcard "
                "origin); list the origins instead",
            )
        if not origins:
            raise ConfigurationError("FENDER_CORS_ORIGINS", "", "at least one origin, or *")
        allowed = frozenset() if any_origin else frozenset(_origin(o) for o in origins)
        if not isinstance(self.max_age, int) or not 0 <= self.max_age <= 86400:  # noqa: PLR2004
            raise ConfigurationError("FENDER_CORS_MAX_AGE", self.max_age, "0 to 86400 seconds")
        for variable, values in (
            ("FENDER_CORS_METHODS", self.methods),
            ("FENDER_CORS_HEADERS", self.headers),
            ("FENDER_CORS_EXPOSE_HEADERS", self.expose_headers),
        ):
            _tokens(",".join(values), variable)
        set_ = object.__setattr__
        set_(self, "any_origin", any_origin)
        set_(self, "_allowed", allowed)
        set_(self, "_headers", frozenset(h.lower() for h in self.headers))
        credentials = (("access-control-allow-credentials", "true"),) if self.credentials else ()
        preflight = [("access-control-max-age", str(self.max_age)), *credentials]
        if "*" not in self.methods:
            preflight.append(("access-control-allow-methods", ", ".join(self.methods)))
        if "*" not in self.headers and self.headers:
            preflight.append(("access-control-allow-headers", ", ".join(self.headers)))
        set_(self, "_preflight", tuple(preflight))
        actual = list(credentials)
        if self.expose_headers:
            actual.append(("access-control-expose-headers", ", ".join(self.expose_headers)))
        set_(self, "_actual", tuple(actual))

    @classmethod
    def parse(
        cls,
        origins: str,
        *,
        methods: str = "GET,POST,PUT,PATCH,DELETE",
        headers: str = "Authorization,Content-Type,X-Request-ID",
        expose_headers: str = "",
        credentials: bool = False,
        max_age: int = 600,
    ) -> CorsPolicy:
        """Build from comma-separated settings values. Raises :class:`ConfigurationError`."""
        return cls(
            origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            methods=_tokens(methods, "FENDER_CORS_METHODS"),
            headers=_tokens(headers, "FENDER_CORS_HEADERS"),
            expose_headers=_tokens(expose_headers, "FENDER_CORS_EXPOSE_HEADERS"),
            credentials=credentials,
            max_age=max_age,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy | None:
        """The policy of FENDER_CORS_*; None when FENDER_CORS_ORIGINS is empty (no CORS)."""
        if not settings.cors_origins.strip():
            return None
        return cls.parse(
            settings.cors_origins,
            methods=settings.cors_methods,
            headers=settings.cors_headers,
            expose_headers=settings.cors_expose_headers,
            credentials=settings.cors_credentials,
            max_age=settings.cors_max_age,
        )

    def allows(self, origin: str) -> bool:
        """True when ``origin`` (an ``Origin`` header) may call the API."""
        return self.any_origin or origin in self._allowed or origin.lower() in self._allowed

    def _allow_origin(self, origin: str) -> tuple[tuple[str, str], ...]:
        if self.any_origin:
            return (("access-control-allow-origin", "*"),)
        return (("access-control-allow-origin", origin), _VARY)

    def preflight(
        self, origin: str, method: str, request_headers: str | None
    ) -> tuple[PreflightOutcome, tuple[tuple[str, str], ...]]:
        """Judge a preflight: ``ok`` and the answer's headers, or what is refused (and Vary)."""
        vary = () if self.any_origin else (_VARY,)
        if not self.allows(origin):
            return "origin", vary
        if method not in _SAFE_METHODS and "*" not in self.methods and method not in self.methods:
            return "method", vary
        asked = [h.strip().lower() for h in (request_headers or "").split(",") if h.strip()]
        if "*" not in self.headers:
            for name in asked:
                if name not in self._headers and name not in _SAFE_HEADERS:
                    return "headers", vary
        echo: list[tuple[str, str]] = []
        if "*" in self.methods:
            echo.append(("access-control-allow-methods", method))
        if "*" in self.headers and asked:
            echo.append(("access-control-allow-headers", ", ".join(asked)))
        return "ok", (*self._allow_origin(origin), *self._preflight, *echo)

    def actual(self, origin: str | None) -> tuple[tuple[str, str], ...]:
        """The headers of a response to a (non-preflight) request with this ``Origin``."""
        if origin is not None and self.allows(origin):
            return (*self._allow_origin(origin), *self._actual)
        # The answer depends on the Origin: caches must not hand it to another one.
        return () if self.any_origin else (_VARY,)
