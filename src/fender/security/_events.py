"""Security events: one structured ``security_event`` log line and one counter per event.

Observed, never blocked here: whoever detects something (the admin guard, the host check, the
rate limiter, the header bounds) calls :func:`security_event`; alert rules read
``security_events_total{type}``. Values a client chose are bounded before they are logged, so
that an event can never be a way to write megabytes into the logs.
"""

from __future__ import annotations

from typing import Final

from fender._bounded import clipped
from fender.observability import _metrics as metrics
from fender.observability._logging import get_logger

__all__ = ["EVENT_TYPES", "MAX_FIELD", "bounded", "security_event"]

EVENT_TYPES: Final = frozenset(
    {
        "admin_action",  # a state-changing admin request that was allowed (who asked)
        "admin_denied",  # a protected endpoint refused: bad or missing token, foreign network
        "bad_admin_token",  # a bearer token was presented and is wrong
        "cross_site_request",  # a blind cross-site request to an admin action, refused
        "disallowed_host",  # a Host not in FENDER_ALLOWED_HOSTS
        "malformed_header",  # a header fender must read could not be parsed
        "oversized_header",  # the request head over FENDER_MAX_HEADER_BYTES / _COUNT
        "probe_path",  # a well-known scanner path (/wp-admin, /.env, traversal)
        "rate_limit_abuse",  # one key rejected over FENDER_SECURITY_EVENT_THRESHOLD a minute
        "slow_request_head",  # a request head not complete in FENDER_REQUEST_HEAD_TIMEOUT
        "untrusted_proxy_header",  # forwarding headers from a peer that is not a trusted proxy
    }
)
"""The ``type`` label's values: a closed set, so the counter's series stay few."""

MAX_FIELD: Final = 200
"""The most characters of a client-chosen value an event carries."""

_logger = get_logger("fender.security")
_counter = metrics.counter("security_events", "Security events observed, by type.", ("type",))
_children = {kind: _counter.labels(kind) for kind in EVENT_TYPES}


def bounded(value: object, limit: int = MAX_FIELD) -> str:
    """``value`` as text of at most ``limit`` characters (``...`` and the original length)."""
    return clipped(value if isinstance(value, str) else str(value), limit)


def security_event(kind: str, /, **fields: object) -> None:
    """Log a ``security_event`` of type ``kind`` and count it.

    ``fields`` describe it (client, path, method, reason...); each value is bounded
    (:func:`bounded`). ``kind`` must be one of :data:`EVENT_TYPES`.
    """
    child = _children.get(kind)
    if child is None:
        raise ValueError(f"unknown security event type {kind!r}; one of {sorted(EVENT_TYPES)}")
    child.inc()
    _logger.warning(
        "security_event",
        type=kind,
        **{
            k: v if v is None or isinstance(v, (int, float, bool)) else bounded(v)
            for k, v in fields.items()
        },
    )
