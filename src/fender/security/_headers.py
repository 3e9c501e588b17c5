"""The response security headers (pure): one policy, compiled once into header lists.

:class:`SecurityHeaders` is built and validated at start-up (from settings, or by hand); it
compiles to a :class:`HeaderSet`: the exact ``(name, value)`` pairs to append, for http and for
https (HSTS and ``upgrade-insecure-requests`` only there), as bytes (ASGI) and as text (WSGI).
Per request the middleware appends one of those lists; a policy using :attr:`CSP.NONCE` has
its CSP value kept split around the nonce, so that splicing a request's nonce is one join.

The defaults are helmet 8's, plus a ``Permissions-Policy`` denying powerful features::

    Content-Security-Policy: default-src 'self'; base-uri 'self'; font-src 'self' https: data:;
        form-action 'self'; frame-ancestors 'self'; img-src 'self' data:; object-src 'none';
        script-src 'self'; script-src-attr 'none'; style-src 'self' https: 'unsafe-inline';
        upgrade-insecure-requests
    Cross-Origin-Opener-Policy: same-origin
    Cross-Origin-Resource-Policy: same-origin
    Origin-Agent-Cluster: ?1
    Referrer-Policy: no-referrer
    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    X-DNS-Prefetch-Control: off
    X-Download-Options: noopen
    X-Frame-Options: SAMEORIGIN
    X-Permitted-Cross-Domain-Policies: none
    X-XSS-Protection: 0
    Permissions-Policy: camera=(), microphone=(), geolocation=(), payment=(), usb=(),
        browsing-topics=()

The ``api`` profile (JSON services) has ``Content-Security-Policy: default-src 'none';
frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, the rest alike.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from fender.errors import ConfigurationError
from fender.security._cookies import CookiePolicy
from fender.security._csp import CSP, NONCE_PLACEHOLDER
from fender.security._hsts import HSTS
from fender.settings import Settings

__all__ = [
    "CSP_NONCE",
    "DROPPED",
    "HEADERS_ATTRIBUTE",
    "REPORT_GROUP",
    "HeaderSet",
    "RouteHeaders",
    "SecurityHeaders",
    "new_nonce",
    "routes_marked",
    "security_headers",
]

Profile = Literal["web", "api"]
F = TypeVar("F", bound=Callable[..., Any])

CSP_NONCE: ContextVar[str | None] = ContextVar("fender_csp_nonce", default=None)
"""The current request's CSP nonce (None when its policy uses none)."""

HEADERS_ATTRIBUTE: Final = "__fender_security_headers__"
"""The attribute :func:`security_headers` sets on an endpoint: its :class:`RouteHeaders`."""

DROPPED: Final = ("server", "x-powered-by")
"""Response headers removed from the app's responses: they only tell what runs the service."""

REPORT_GROUP: Final = "csp-endpoint"
"""The Reporting API group of FENDER_CSP_REPORT_URI (``report-to csp-endpoint``)."""

_PERMISSIONS: Final = ", ".join(
    f"{feature}=()"
    for feature in ("camera", "microphone", "geolocation", "payment", "usb", "browsing-topics")
)
_COMMON: Final = (
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Origin-Agent-Cluster", "?1"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-DNS-Prefetch-Control", "off"),
    ("X-Download-Options", "noopen"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("X-Permitted-Cross-Domain-Policies", "none"),
    ("X-XSS-Protection", "0"),
    ("Permissions-Policy", _PERMISSIONS),
)
_PROFILES: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "web": _COMMON,
    "api": tuple((name, "DENY" if name == "X-Frame-Options" else value) for name, value in _COMMON),
}
_CSP_HEADER: Final = "Content-Security-Policy"
_CSP_REPORT_ONLY: Final = "Content-Security-Policy-Report-Only"
_HSTS_HEADER: Final = "Strict-Transport-Security"
_REPORTING: Final = "Reporting-Endpoints"
# Set through their own options, not as plain headers: they are validated there.
_OWN_OPTIONS: Final = {
    _CSP_HEADER.lower(): "csp",
    _CSP_REPORT_ONLY.lower(): "csp and csp_report_only",
    _HSTS_HEADER.lower(): "hsts",
    _REPORTING.lower(): "csp (CSP.report_to)",
}
# Directives a browser applies on https only, or ignores in a report-only policy.
_HTTPS_ONLY: Final = ("upgrade-insecure-requests",)
_NOT_IN_REPORT_ONLY: Final = ("upgrade-insecure-requests", "sandbox")
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MAX_CACHED: Final = 4096


class _Keep:
    """The default of an option: keep the app's (or the profile's) value."""

    def __repr__(self) -> str:
        return "KEEP"


_KEEP: Final = _Keep()


_COOKIES: Final = CookiePolicy()


class _Marks:
    """Whether :func:`security_headers` has marked any function in this process."""

    made = False


def routes_marked() -> bool:
    """True once any route was marked by :func:`security_headers` (in any app).

    Only a shortcut: while none is, an adapter need not look up which view answered (a
    Flask view lookup costs about 1.5 µs a request).
    """
    return _Marks.made


def new_nonce() -> str:
    """A fresh CSP nonce: 144 random bits, URL-safe base64 (24 characters)."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True)
class HeaderSet:
    """The compiled headers of one policy (the app's, or a route's override).

    ``asgi_http``/``asgi_https`` (lower-case bytes) and ``wsgi_http``/``wsgi_https`` (text)
    are complete when ``csp_http``/``csp_https`` are None; else the CSP is spliced per request:
    ``nonce.join(csp_https)`` under the name ``csp_name``.
    """

    asgi_http: tuple[tuple[bytes, bytes], ...]
    asgi_https: tuple[tuple[bytes, bytes], ...]
    wsgi_http: tuple[tuple[str, str], ...]
    wsgi_https: tuple[tuple[str, str], ...]
    asgi_names: frozenset[bytes]
    wsgi_names: frozenset[str]
    csp_name: str
    wsgi_csp_name: str
    asgi_csp_name: bytes
    csp_http: tuple[str, ...] | None
    csp_https: tuple[str, ...] | None

    @property
    def uses_nonce(self) -> bool:
        """True when the CSP is spliced with the request's nonce."""
        return self.csp_https is not None


@dataclass(frozen=True, slots=True)
class RouteHeaders:
    """One route's change to the app's headers (see :func:`security_headers`)."""

    enabled: bool
    csp: CSP | _Keep | None
    csp_report_only: bool | None
    headers: tuple[tuple[str, str | None], ...]


def security_headers(
    *,
    enabled: bool = True,
    csp: CSP | Mapping[str, object] | str | _Keep | None = _KEEP,
    csp_report_only: bool | None = None,
    headers: Mapping[str, str | None] | None = None,
) -> Callable[[F], F]:
    """Change the security headers of one endpoint (FastAPI, Starlette or Flask view).

    It only marks the function; fender reads the mark when the route's response starts and
    compiles the route's headers once, on first use. Validated now: a bad policy fails at
    import time.

    Args:
        enabled: False: fender adds none of its security headers to this route's responses.
        csp: the route's policy (a :class:`CSP`, a dict, a header string), or None for none;
            default: the app's.
        csp_report_only: send the route's policy as report-only (True) or enforced (False);
            default: as the app does.
        headers: other headers to set (a value) or to leave out (None), by name.

    Example:
        >>> @security_headers(csp={"default-src": "'self'", "frame-ancestors": "*"})
        ... def embeddable_widget(): ...

    Raises:
        ConfigurationError: an invalid policy or header.
    """
    policy = csp if isinstance(csp, _Keep) else _policy(csp, "security_headers.csp")
    if not isinstance(enabled, bool):
        raise ConfigurationError("security_headers.enabled", enabled, "True or False")
    if csp_report_only is not None and not isinstance(csp_report_only, bool):
        raise ConfigurationError("security_headers.csp_report_only", csp_report_only, "a bool")
    mark = RouteHeaders(
        enabled=enabled,
        csp=policy,
        csp_report_only=csp_report_only,
        headers=_header_overrides(headers or {}, "security_headers.headers"),
    )

    def decorate(fn: F) -> F:
        setattr(fn, HEADERS_ATTRIBUTE, mark)
        _Marks.made = True
        return fn

    return decorate


class SecurityHeaders:
    """The app's response security headers: built once, compiled to header lists.

    Example:
        >>> policy = SecurityHeaders(csp=CSP.web().override({"script-src": [CSP.SELF, CSP.NONCE]}))
        >>> policy.uses_nonce
        True
        >>> [name for name, _ in policy.default.wsgi_https][:2]
        ['Cross-Origin-Opener-Policy', 'Cross-Origin-Resource-Policy']
    """

    def __init__(
        self,
        *,
        profile: Profile = "web",
        csp: CSP | Mapping[str, object] | str | _Keep | None = _KEEP,
        csp_report_only: bool = False,
        report_uri: str | None = None,
        hsts: HSTS | str | None = None,
        headers: Mapping[str, str | None] | None = None,
        cookies: CookiePolicy | None = _COOKIES,
        enabled: bool = True,
        field: str = "security",
    ) -> None:
        """Validate and compile.

        Args:
            profile: ``web`` (pages: helmet's defaults) or ``api`` (JSON services).
            csp: the policy (a :class:`CSP`, a dict for :meth:`CSP.from_dict`, a header
                string), None for no CSP header; default: the profile's.
            csp_report_only: send it as ``Content-Security-Policy-Report-Only``.
            report_uri: where browsers report violations: adds ``report-uri`` and
                ``report-to`` (group :data:`REPORT_GROUP`, with ``Reporting-Endpoints``).
            hsts: Strict-Transport-Security options (an :class:`HSTS` or a header string);
                default ``HSTS()`` (one year, includeSubDomains). Sent on https only.
            headers: the other headers: a value sets one (new, or replacing a default), None
                leaves a default out.
            cookies: which cookies are hardened (default: :class:`CookiePolicy`'s session
                and CSRF cookies); None: none.
            enabled: False: no header at all (the middleware does nothing).
            field: the prefix of error messages (the settings' names, from settings).

        Raises:
            ConfigurationError: naming the option (and the CSP directive) that is invalid.
        """
        if profile not in _PROFILES:
            raise ConfigurationError(f"{field}.profile", profile, "'web' or 'api'")
        self.profile = profile
        self.enabled = enabled
        self.cookies = cookies
        self.csp_report_only = csp_report_only
        if isinstance(csp, _Keep):
            policy: CSP | None = CSP.web() if profile == "web" else CSP.api()
        else:
            policy = _policy(csp, f"{field}.csp")
        if report_uri:
            if policy is None:
                raise ConfigurationError(f"{field}.report_uri", report_uri, "a CSP to report on")
            policy = policy.override({"report-uri": report_uri}).report_to(REPORT_GROUP, report_uri)
        self.csp = policy
        if hsts is None:
            hsts = HSTS()
        elif isinstance(hsts, str):
            hsts = HSTS.parse(hsts, field=f"{field}.hsts")
        elif not isinstance(hsts, HSTS):
            raise ConfigurationError(f"{field}.hsts", hsts, "an HSTS, a header string or None")
        self.hsts = hsts
        self.headers = _header_overrides(headers or {}, f"{field}.headers")
        self.default = self._compile(self.csp, csp_report_only, self.headers)
        self._routes: dict[object, HeaderSet | None] = {}
        # A route's own policy uses a nonce: then every request gets one, since the route is
        # known only once the app has routed it, and the nonce must exist before the app runs.
        self._route_nonces = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SecurityHeaders:
        """The policy the settings describe (FENDER_SECURITY_*, FENDER_CSP*, FENDER_HSTS_*...).

        FENDER_SECURE_COOKIES picks the cookie hardening.

        ``FENDER_CSP`` replaces the profile's policy (validated as :meth:`CSP.parse` does;
        ``none`` sends no CSP).
        """
        csp: CSP | _Keep | None = _KEEP
        text = settings.csp.strip()
        if text.lower() == "none":
            csp = None
        elif text:
            csp = CSP.parse(text, field="FENDER_CSP")
        return cls(
            profile=settings.security_profile,
            csp=csp,
            csp_report_only=settings.csp_report_only,
            report_uri=settings.csp_report_uri or None,
            hsts=HSTS(
                max_age=settings.hsts_max_age,
                include_subdomains=settings.hsts_include_subdomains,
                preload=settings.hsts_preload,
                field="FENDER_HSTS",
            ),
            cookies=CookiePolicy() if settings.secure_cookies else None,
            enabled=settings.security_headers,
            field="FENDER_SECURITY",
        )

    @property
    def uses_nonce(self) -> bool:
        """True when requests need a fresh nonce: the app's policy or a route's uses one."""
        return self.enabled and (self.default.uses_nonce or self._route_nonces)

    def for_endpoint(self, endpoint: object) -> HeaderSet | None:
        """The headers of a request answered by ``endpoint`` (None: a route without them).

        ``endpoint``: the view function (Starlette's ``scope["endpoint"]``, Flask's view), or
        None when unknown (the app's headers). Compiled once per endpoint, on first use.
        """
        if endpoint is None:
            return self.default
        try:
            return self._routes[endpoint]
        except KeyError:
            pass
        except TypeError:  # an unhashable endpoint (a callable object): not cached
            return self._route(endpoint)
        found = self._route(endpoint)
        if len(self._routes) < _MAX_CACHED:
            self._routes[endpoint] = found
        return found

    def add_endpoints(self, endpoints: Iterable[object]) -> None:
        """Compile the routes' own headers now (the adapters pass the app's views).

        A route whose policy uses a nonce makes every request get one (:attr:`uses_nonce`).
        A route not seen here is compiled on its first response; if its policy uses a nonce,
        that response's nonce is one the app did not see, and later requests get theirs.
        """
        for endpoint in endpoints:
            self.for_endpoint(endpoint)

    def with_session_cookie(self, name: str) -> None:
        """Harden ``name`` as a session cookie too (an app's configured session cookie)."""
        if self.cookies is not None and name:
            self.cookies = self.cookies.with_session_cookie(name)

    def _route(self, endpoint: object) -> HeaderSet | None:
        mark = getattr(endpoint, HEADERS_ATTRIBUTE, None)
        if not isinstance(mark, RouteHeaders):
            return self.default
        if not mark.enabled:
            return None
        csp = self.csp if isinstance(mark.csp, _Keep) else mark.csp
        if csp is not None and csp.uses_nonce:
            self._route_nonces = True
        report_only = self.csp_report_only if mark.csp_report_only is None else mark.csp_report_only
        return self._compile(csp, report_only, (*self.headers, *mark.headers))

    def _compile(
        self,
        csp: CSP | None,
        report_only: bool,  # noqa: FBT001
        overrides: tuple[tuple[str, str | None], ...],
    ) -> HeaderSet:
        chosen: dict[str, tuple[str, str]] = {
            name.lower(): (name, value) for name, value in _PROFILES[self.profile]
        }
        for name, value in overrides:
            if value is None:
                chosen.pop(name.lower(), None)
            else:
                chosen[name.lower()] = (name, value)
        common = list(chosen.values())
        csp_name = _CSP_REPORT_ONLY if report_only else _CSP_HEADER
        http: list[tuple[str, str]] = list(common)
        https: list[tuple[str, str]] = list(common)
        hsts = self.hsts.header_value()
        if hsts is not None:
            https.append((_HSTS_HEADER, hsts))
        csp_http = csp_https = None
        if csp is not None:
            dropped = _NOT_IN_REPORT_ONLY if report_only else ()
            value_http = csp.header_value(exclude=(*dropped, *_HTTPS_ONLY))
            value_https = csp.header_value(exclude=dropped)
            if csp.uses_nonce:
                csp_http = tuple(value_http.split(NONCE_PLACEHOLDER))
                csp_https = tuple(value_https.split(NONCE_PLACEHOLDER))
            else:
                http.append((csp_name, value_http))
                https.append((csp_name, value_https))
            endpoints = csp.reporting_endpoints
            if endpoints is not None:
                http.append((_REPORTING, endpoints))
                https.append((_REPORTING, endpoints))
        names = {name.lower() for name, _ in https}
        if csp is not None:
            names.add(csp_name.lower())
        return HeaderSet(
            asgi_http=_encode(http),
            asgi_https=_encode(https),
            wsgi_http=tuple(http),
            wsgi_https=tuple(https),
            asgi_names=frozenset(name.encode("latin-1") for name in names),
            wsgi_names=frozenset(names),
            csp_name=csp_name,
            wsgi_csp_name=csp_name.lower(),
            asgi_csp_name=csp_name.lower().encode("latin-1"),
            csp_http=csp_http,
            csp_https=csp_https,
        )


def _encode(headers: list[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers)


def _policy(csp: object, field: str) -> CSP | None:
    """A CSP from what an option holds (a CSP, a dict, a header string, None), validated."""
    if csp is None or isinstance(csp, CSP):
        if csp is not None:
            csp.header_value()  # judged whole: default-src
        return csp
    if isinstance(csp, str):
        return CSP.parse(csp, field=field)
    if isinstance(csp, Mapping):
        return CSP.from_dict(csp, field=field)
    raise ConfigurationError(field, csp, "a CSP, a dict of directives, a policy string or None")


def _header_overrides(
    headers: Mapping[str, str | None], field: str
) -> tuple[tuple[str, str | None], ...]:
    """``headers`` validated: token names, values a header can carry, no CSP or HSTS."""
    if not isinstance(headers, Mapping):
        raise ConfigurationError(field, headers, "a mapping of header names to values or None")
    out: list[tuple[str, str | None]] = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigurationError(field, name, "a header name (an HTTP token)")
        own = _OWN_OPTIONS.get(name.lower())
        if own is not None:
            raise ConfigurationError(f"{field}.{name}", value, f"set through the {own} option")
        if value is not None and (
            not isinstance(value, str)
            or not value.isprintable()
            or not value.isascii()
            or value != value.strip()
        ):
            raise ConfigurationError(
                f"{field}.{name}", value, "a header value: printable ASCII, no CR or LF, or None"
            )
        out.append((name, value))
    return tuple(out)
