"""What every request leaves behind: HTTP metrics, one access event, a slow-request warning.

Framework-free and shared by the ASGI and WSGI middleware, built once when the app is built:
the per-request path is a few dict lookups, one histogram observation and one JSON line.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from fender.observability import metrics
from fender.observability.logging import access_log, get_logger
from fender.ratelimit.clientip import ClientIPResolver
from fender.settings import Settings

__all__ = ["KNOWN_METHODS", "Observer", "method_label", "template_of_rule"]

# OpenTelemetry's known HTTP methods; anything else is reported as _OTHER.
KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
UNMATCHED: Final = "unmatched"
_FLASK_VARIABLE: Final = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def method_label(method: str) -> str:
    """``method`` if OpenTelemetry knows it, else ``_OTHER`` (bounded label values)."""
    return method if method in KNOWN_METHODS else "_OTHER"


@functools.lru_cache(maxsize=4096)
def template_of_rule(rule: str) -> str:
    """A werkzeug rule as a route template: ``/items/<int:item_id>`` -> ``/items/{item_id}``."""
    return _FLASK_VARIABLE.sub(r"{\1}", rule)


class Observer:
    """Records the outcome of each request; one per application."""

    __slots__ = (
        "_access",
        "_active",
        "_client_ips",
        "_duration",
        "_log",
        "_logger",
        "_slow",
        "_slow_seconds",
        "_statuses",
    )

    def __init__(self, settings: Settings, client_ips: ClientIPResolver | None = None) -> None:
        """Declare the HTTP metrics (once per process) and precompute the thresholds.

        ``client_ips`` (given when proxies are trusted) turns the socket peer into the client.
        """
        self._client_ips = client_ips
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

    @property
    def reads_proxy_headers(self) -> bool:
        """True when the client address comes from X-Forwarded-For / Forwarded."""
        return self._client_ips is not None

    def client(
        self, peer: str | None, forwarded_for: str | None, forwarded: str | None
    ) -> str | None:
        """The client address for the access event: the peer, unless proxies are trusted."""
        if self._client_ips is None or peer is None:
            return peer
        return self._client_ips.resolve(peer, x_forwarded_for=forwarded_for, forwarded=forwarded)

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
    ) -> None:
        """Record one finished request: metrics, the access event, a slow-request warning."""
        label = method if method in KNOWN_METHODS else "_OTHER"
        status_text = self._statuses.get(status)
        if status_text is None:
            status_text = self._statuses.setdefault(status, str(status))
        self._duration.child(route, label, status_text).observe(duration)
        duration_ms = round(duration * 1000, 3)
        if self._access:
            self._log.request(
                request_id, method, route, status, duration_ms, response_bytes, client, user_agent
            )
        if duration > self._slow_seconds:
            self._slow.child(route, label).inc()
            self._logger.warning(
                "slow_request",
                method=method,
                route=route,
                status=status,
                duration_ms=duration_ms,
                threshold_ms=self._slow_seconds * 1000,
            )
