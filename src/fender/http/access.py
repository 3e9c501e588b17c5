"""What every request leaves behind: HTTP metrics, one access event, a slow-request warning.

Framework-free and shared by the ASGI and WSGI middleware, built once when the app is built:
the per-request path is a few dict lookups, one histogram observation and one JSON line.

Routes are the templates a router matched. An app fender knows no router of (``fender.asgi.wrap``,
``fender.wsgi.wrap``) has only its raw paths: each is bounded in size by :func:`path_label`,
and the metrics name at most ``max_raw_paths`` distinct ones per process; later paths count
under ``unmatched`` (the access event still names them, bounded).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from fender._bounded import BOUNDED_MAX, bounded, clipped
from fender._http import Forwarding
from fender.errors import ConfigurationError
from fender.observability import _metrics as metrics
from fender.observability._logging import access_log, get_logger
from fender.ratelimit._clientip import ClientIPResolver
from fender.settings import Settings

__all__ = [
    "KNOWN_METHODS",
    "LOGGED_MAX",
    "MAX_RAW_PATHS",
    "PATH_LABEL_MAX",
    "UNMATCHED",
    "Observer",
    "method_label",
    "path_label",
    "template_of_rule",
]

# OpenTelemetry's known HTTP methods; anything else is reported as _OTHER.
KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
UNMATCHED: Final = "unmatched"
"""The route of a request no known template names (a 404, a path past ``MAX_RAW_PATHS``)."""

PATH_LABEL_MAX: Final = BOUNDED_MAX
"""The longest raw path :func:`path_label` keeps as it is (in characters)."""
path_label = bounded
"""A raw request path bounded in size for a metrics label (see :func:`fender._bounded.bounded`)."""

MAX_RAW_PATHS: Final = 100
"""Distinct raw paths (of an app without a router) the HTTP metrics name, per process."""

LOGGED_MAX: Final = {"user_agent": 512, "method": 32, "client": 128, "route": 2048}
"""The most characters of each client-chosen field an access event (or a slow-request
warning) carries; past it the value is cut, with a marker and its length."""
_AGENT_MAX: Final = LOGGED_MAX["user_agent"]
_METHOD_MAX: Final = LOGGED_MAX["method"]
_CLIENT_MAX: Final = LOGGED_MAX["client"]
_ROUTE_MAX: Final = LOGGED_MAX["route"]

_FLASK_VARIABLE: Final = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def method_label(method: str) -> str:
    """``method`` if OpenTelemetry knows it, else ``_OTHER`` (bounded label values)."""
    return method if method in KNOWN_METHODS else "_OTHER"


@functools.lru_cache(maxsize=4096)
def template_of_rule(rule: str) -> str:
    """A werkzeug rule as a route template: ``/items/<int:item_id>`` -> ``/items/{item_id}``."""
    return _FLASK_VARIABLE.sub(r"{\1}", rule)


def _logged(
    method: str, user_agent: str | None, client: str | None
) -> tuple[str, str | None, str | None]:
    """Client-chosen text, bounded before it is logged (a length check each when short)."""
    if len(method) > _METHOD_MAX:
        method = clipped(method, _METHOD_MAX)
    if user_agent is not None and len(user_agent) > _AGENT_MAX:
        user_agent = clipped(user_agent, _AGENT_MAX)
    if client is not None and len(client) > _CLIENT_MAX:
        client = clipped(client, _CLIENT_MAX)
    return method, user_agent, client


class Observer:
    """Records the outcome of each request; one per application."""

    __slots__ = (
        "_access",
        "_active",
        "_client_ips",
        "_duration",
        "_log",
        "_logger",
        "_max_raw_paths",
        "_raw_paths",
        "_slow",
        "_slow_seconds",
        "_statuses",
        "monitor",
    )

    def __init__(
        self,
        settings: Settings,
        client_ips: ClientIPResolver | None = None,
        *,
        max_raw_paths: int = MAX_RAW_PATHS,
    ) -> None:
        """Declare the HTTP metrics (once per process) and precompute the thresholds.

        ``client_ips`` (given when proxies are trusted) turns the socket peer into the client.
        ``max_raw_paths``: distinct raw paths named in the metrics (see the module).
        """
        if max_raw_paths < 0:
            raise ConfigurationError("max_raw_paths", max_raw_paths, "0 or more")
        self._client_ips = client_ips
        self._raw_paths: set[str] = set()
        self._max_raw_paths = max_raw_paths
        cap = settings.metrics_max_series
        # The two series every request touches are buffered (see metrics.Buffered).
        self._duration = metrics.LabelGuard(
            metrics.Buffered(
                metrics.histogram(
                    "http_server_request_duration_seconds",
                    "Duration of HTTP server requests, by method, route template and status code.",
                    ("route", "method", "status_code"),
                )
            ),
            max_series=cap,
        )
        self._active = metrics.LabelGuard(
            metrics.Buffered(
                metrics.gauge(
                    "http_server_active_requests",
                    "HTTP server requests in flight.",
                    ("method",),
                    multiprocess_mode="livesum",
                )
            ),
            max_series=len(KNOWN_METHODS) + 1,
        )
        self._slow = metrics.LabelGuard(
            metrics.counter(
                "http_server_slow_requests",
                "HTTP server requests slower than FENDER_SLOW_REQUEST_MS.",
                ("route", "method"),
            ),
            max_series=cap,
        )
        self._slow_seconds = settings.slow_request_ms / 1000
        self._access = settings.access_log
        self._log = access_log()
        self._statuses: dict[int, str] = {}
        self._logger = get_logger("fender.access")
        self.monitor: Any = None
        """The in-process monitor (:class:`fender.monitor.Monitor`) each request is told to."""

    @property
    def reads_proxy_headers(self) -> bool:
        """True when the client address comes from X-Forwarded-For / Forwarded."""
        return self._client_ips is not None

    def client(self, peer: str | None, forwarding: Forwarding | None) -> str | None:
        """The client address for the access event: the peer, unless proxies are trusted.

        ``forwarding`` None: the edge resolved the request already, ``peer`` is the client.
        """
        if self._client_ips is None or peer is None or forwarding is None:
            return peer
        return self._client_ips.resolve_request(peer, forwarding).address

    def active(self, method: str) -> Any:
        """The in-flight gauge of ``method``: ``inc()`` at the start, ``dec()`` at the end."""
        return self._active.child(method if method in KNOWN_METHODS else "_OTHER")

    def finish(  # noqa: PLR0917  (the request's outcome, positional on the hot path)
        self,
        request_id: str | None,
        method: str,
        route: str,
        status: int,
        duration: float,
        response_bytes: int,
        client: str | None,
        user_agent: str | None,
        error: str | None = None,
        *,
        raw_path: bool = False,
    ) -> None:
        """Record one finished request: metrics, the access event, a slow-request warning.

        Args:
            request_id: the request's id.
            method: the request method (``_OTHER`` in the metrics when not a known one).
            route: the route template, ``unmatched``, or with ``raw_path`` the request's path.
            status: the status sent (or 500 when none was).
            duration: seconds from the request's start to its end.
            response_bytes: body bytes sent.
            client: the client's address.
            user_agent: the ``User-Agent`` header.

        The client-chosen fields (user agent, method, client, route) are cut to
        :data:`LOGGED_MAX` characters before they are logged.
            error: what went wrong while serving, whatever the status says (the class name
                of an exception the app raised, ``no_response``...): a field of the access
                event when set.
            raw_path: ``route`` is a raw path (no router known): bounded with
                :func:`path_label`, and past ``max_raw_paths`` distinct ones the metrics
                say ``unmatched`` (the access event keeps the bounded path).
        """
        label = method if method in KNOWN_METHODS else "_OTHER"
        method, user_agent, client = _logged(method, user_agent, client)
        if len(route) > _ROUTE_MAX and not raw_path:  # (a raw path is bounded below)
            route = clipped(route, _ROUTE_MAX)
        route_label = route
        if raw_path:
            route = route_label = path_label(route)
            raw_paths = self._raw_paths
            if route not in raw_paths:
                # (unlocked: racing threads may overshoot the cap by their number, no more)
                if len(raw_paths) < self._max_raw_paths:
                    raw_paths.add(route)
                else:
                    route_label = UNMATCHED
        status_text = self._statuses.get(status)
        if status_text is None:
            status_text = self._statuses.setdefault(status, str(status))
        self._duration.child(route_label, label, status_text).observe(duration)
        monitor = self.monitor
        if monitor is not None:
            monitor.record(route_label, status, duration)
        duration_ms = round(duration * 1000, 3)
        if self._access:
            self._log.request(
                request_id,
                method,
                route,
                status,
                duration_ms,
                response_bytes,
                client,
                user_agent,
                error,
            )
        if duration > self._slow_seconds:
            self._slow.child(route_label, label).inc()
            self._logger.warning(
                "slow_request",
                method=method,
                route=route,
                status=status,
                duration_ms=duration_ms,
                threshold_ms=self._slow_seconds * 1000,
            )
