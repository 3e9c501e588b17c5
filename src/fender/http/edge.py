"""The edge of the request path (framework-free): what is decided before the app is asked.

In order, for each request that reaches the app (fender's own endpoints are answered before,
by the access layer, and never get here: a Kubernetes probe's ``Host`` is the pod's address,
and a load balancer checks health over plain http):

1. **Head bounds**: a request line and headers over FENDER_MAX_HEADER_BYTES, or more header
   lines than FENDER_MAX_HEADER_COUNT, get ``431 {"error": "headers_too_large"}`` and an
   ``oversized_header`` security event. (The server bounds what it reads before that.)
2. **Proxies**: the one resolver (:class:`~fender.ratelimit.ClientIPResolver`) names the
   effective client, scheme and host; the shells write them into the scope or environ, so that
   the app and every layer inside see them. Headers from an untrusted peer change nothing
   (an ``untrusted_proxy_header`` event when proxies are configured); a trusted proxy's
   unreadable chain or scheme or host is a ``malformed_header`` event.
3. **Probes**: a well-known scanner path is a ``probe_path`` event; the request goes on.
4. **Allowed hosts** (FENDER_ALLOWED_HOSTS): another ``Host`` gets ``400 {"error":
   "disallowed_host"}`` and a ``disallowed_host`` event.
5. **HTTPS** (FENDER_FORCE_HTTPS, production only): plain http gets a redirect to
   ``https://host/path?query``, 301 for GET and HEAD, 308 otherwise (method and body kept);
   fender's endpoint paths and FENDER_HTTPS_EXEMPT prefixes are served over http.
6. **CORS** (FENDER_CORS_ORIGINS): a preflight is answered here (204, or 400 ``cors_rejected``),
   so it never reaches the rate limiter or the app; other responses get the CORS headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fender._http import NO_FORWARDING, Forwarding
from fender.errors import ConfigurationError
from fender.http.endpoints import Response, error_response
from fender.observability._logging import get_logger
from fender.security._cors import CorsPolicy
from fender.security._events import security_event
from fender.security._hosts import HostPolicy, host_name
from fender.security._probes import probe_of
from fender.settings._paths import path_groups

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fender.ratelimit._clientip import ClientIPResolver, Resolution
    from fender.settings import Settings

__all__ = ["Edge", "EdgeDecision", "EdgeRequest"]

_logger = get_logger("fender.edge")
_BODYLESS_REDIRECT: Final = frozenset({"GET", "HEAD"})
_DEFAULT_PORTS: Final = (":80", ":443")


@dataclass(slots=True)
class EdgeRequest:
    """What the edge reads of a request; the shells fill it in one pass over the headers.

    Attributes:
        method: the request method.
        path: the decoded path (ASGI ``path``; WSGI ``SCRIPT_NAME`` + ``PATH_INFO``).
        target: the request target as sent: percent-encoded path, ``?`` and query.
        scheme: the connection's scheme (``http`` or ``https``).
        host: the ``Host`` header (None: absent).
        peer: the socket peer's address (None: unknown).
        forwarding: the forwarding headers.
        head_bytes: size of the request line and headers, as the edge counts it.
        header_count: header lines.
        origin: the ``Origin`` header.
        preflight_method: ``Access-Control-Request-Method``.
        preflight_headers: ``Access-Control-Request-Headers``.
        request_id: the request's id, for error bodies.
    """

    method: str
    path: str
    target: str
    scheme: str
    host: str | None
    peer: str | None
    forwarding: Forwarding = NO_FORWARDING
    head_bytes: int = 0
    header_count: int = 0
    origin: str | None = None
    preflight_method: str | None = None
    preflight_headers: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class EdgeDecision:
    """What the edge decided: answer instead of the app, rewrite the request, add headers.

    Attributes:
        response: the answer to send instead of calling the app (None: call it).
        resolution: the resolver's answer to write into the scope or environ (None: no
            proxies configured, nothing to rewrite).
        headers: headers every response to the request carries (CORS).
    """

    response: Response | None = None
    resolution: Resolution | None = None
    headers: tuple[tuple[str, str], ...] = ()


_PASS: Final = EdgeDecision()


class Edge:
    """The edge's decisions for one app, built once from the settings (see the module)."""

    __slots__ = (
        "_exempt_paths",
        "_exempt_prefixes",
        "cors",
        "force_https",
        "hosts",
        "max_header_bytes",
        "max_header_count",
        "passive",
        "resolver",
    )

    def __init__(
        self,
        settings: Settings,
        resolver: ClientIPResolver,
        *,
        exempt_paths: Iterable[str] | None = None,
    ) -> None:
        """Validate the edge's settings (a bad one raises :class:`ConfigurationError`).

        ``resolver``: the app's one resolver of trusted proxies. ``exempt_paths``: paths
        served over http even with FENDER_FORCE_HTTPS (default: fender's endpoint paths).
        """
        self.max_header_bytes = settings.max_header_bytes
        self.max_header_count = settings.max_header_count
        self.resolver = resolver if resolver.configured else None
        hosts = HostPolicy.parse(settings.allowed_hosts)
        self.hosts = None if hosts.any else hosts
        self.cors = CorsPolicy.from_settings(settings)
        self.force_https = settings.force_https and settings.is_production
        if settings.force_https and not settings.is_production:
            _logger.info(
                "https_redirect_inactive",
                setting="FENDER_FORCE_HTTPS",
                why=f"FENDER_ENV is {settings.env}: http is redirected in production only",
            )
        prefixes = []
        for entry in settings.https_exempt.split(","):
            prefix = entry.strip()
            if not prefix:
                continue
            if not prefix.startswith("/"):
                raise ConfigurationError(
                    "FENDER_HTTPS_EXEMPT", prefix, "path prefixes starting with /"
                )
            prefixes.append(prefix.rstrip("/"))
        self._exempt_prefixes = tuple(prefixes)
        if exempt_paths is None:
            groups = path_groups(
                metrics_path=settings.metrics_path if settings.metrics_enabled else None,
                health_prefix=settings.health_prefix,
                health_aliases=settings.health_aliases,
            )
            exempt_paths = [path for _, paths in groups for path in paths]
        self._exempt_paths = frozenset(exempt_paths)
        # No proxies, hosts, redirect or CORS (the defaults): the edge only watches the head
        # bounds and the probe paths, and the shells take :meth:`passes` instead of a full
        # :class:`EdgeRequest` for the requests that trip neither.
        self.passive = (
            self.resolver is None
            and self.hosts is None
            and self.cors is None
            and not self.force_https
        )

    def passes(self, path: str, target: str, head_bytes: int, header_count: int) -> bool:
        """True when a passive edge lets this request by untouched and says nothing.

        False means only "ask :meth:`handle`", which decides (and reports) as for any request.
        """
        return (
            self.passive
            and head_bytes <= self.max_header_bytes
            and header_count <= self.max_header_count
            and probe_of(path, target) is None
        )

    def handle(self, request: EdgeRequest, *, websocket: bool = False) -> EdgeDecision:
        """Decide one request (a websocket handshake: bounds, proxies and hosts only)."""
        if (
            request.head_bytes > self.max_header_bytes
            or request.header_count > self.max_header_count
        ):
            self._oversized(request)
            return EdgeDecision(error_response(431, "headers_too_large", request.request_id))
        resolution = None
        client, scheme, host = request.peer, request.scheme, request.host
        if self.resolver is not None:
            resolution = self.resolver.resolve_request(request.peer, request.forwarding)
            client = resolution.address
            scheme = resolution.scheme or scheme
            host = resolution.host or host
            if resolution.problem is not None:
                _report(resolution, request)
        if not websocket:
            probe = probe_of(request.path, request.target)
            if probe is not None:
                security_event(
                    "probe_path", rule=probe, client=client, method=request.method,
                    path=request.target,
                )  # fmt: skip
        if self.hosts is not None and not self.hosts.allows(host):
            security_event(
                "disallowed_host", host=host, client=client, method=request.method,
                path=request.path,
            )  # fmt: skip
            response = error_response(400, "disallowed_host", request.request_id)
            return EdgeDecision(response, resolution)
        if websocket:
            return EdgeDecision(None, resolution)
        answer = self._answer(request, scheme, host)
        if answer is not None:
            return EdgeDecision(answer, resolution)
        headers = () if self.cors is None else self.cors.actual(request.origin)
        if resolution is None and not headers:
            return _PASS
        return EdgeDecision(None, resolution, headers)

    def _oversized(self, request: EdgeRequest) -> None:
        security_event(
            "oversized_header",
            client=request.peer,
            method=request.method,
            path=request.path,
            head_bytes=request.head_bytes,
            header_count=request.header_count,
            max_bytes=self.max_header_bytes,
            max_count=self.max_header_count,
        )

    def _answer(self, request: EdgeRequest, scheme: str, host: str | None) -> Response | None:
        """The edge's own answer: a redirect to https, a CORS preflight's; None: the app's."""
        if self.force_https and scheme != "https" and not self._exempt(request.path):
            return _redirect(request, host)
        origin = request.origin
        if (
            self.cors is not None
            and origin is not None
            and request.method == "OPTIONS"
            and request.preflight_method
        ):
            return _preflight(self.cors, request, origin)
        return None

    def _exempt(self, path: str) -> bool:
        """True for fender's endpoint paths and paths under a FENDER_HTTPS_EXEMPT prefix."""
        if path in self._exempt_paths:
            return True
        for prefix in self._exempt_prefixes:
            if path == prefix or path.startswith(prefix + "/") or not prefix:
                return True
        return False


def _report(resolution: Resolution, request: EdgeRequest) -> None:
    """The security event of a resolution's problem (a missing chain is none)."""
    problem = resolution.problem
    if problem == "untrusted_peer":
        security_event(
            "untrusted_proxy_header", client=request.peer, method=request.method,
            path=request.path,
        )  # fmt: skip
    elif problem is not None and problem != "no_chain":
        forwarding = request.forwarding
        security_event(
            "malformed_header",
            reason=problem,
            client=request.peer,
            x_forwarded_for=forwarding.x_forwarded_for,
            forwarded=forwarding.forwarded,
            x_forwarded_proto=forwarding.x_forwarded_proto,
            x_forwarded_host=forwarding.x_forwarded_host,
        )


def _redirect(request: EdgeRequest, host: str | None) -> Response:
    """The redirect to https, or a 400 when there is no host to redirect to."""
    if host is None or host_name(host) is None:
        return error_response(400, "https_required", request.request_id)
    host = host.strip().lower()
    if host.endswith(_DEFAULT_PORTS) and not host.endswith("]"):
        host = host.rpartition(":")[0]
    target = request.target if request.target.startswith("/") else "/"
    location = f"https://{host}{target}"
    status = 301 if request.method in _BODYLESS_REDIRECT else 308
    response = error_response(status, "https_required", request.request_id, location=location)
    return Response(status, (*response.headers, ("location", location)), response.body)


def _preflight(cors: CorsPolicy, request: EdgeRequest, origin: str) -> Response:
    """The answer to a CORS preflight: 204 with the grants, or 400 naming what is refused."""
    outcome, headers = cors.preflight(
        origin, request.preflight_method or "", request.preflight_headers
    )
    if outcome == "ok":
        return Response(204, headers, b"")
    response = error_response(400, "cors_rejected", request.request_id, refused=outcome)
    return Response(400, (*response.headers, *headers), response.body)
