"""Request ids: accept a well-formed ``X-Request-ID``, else make one.

The request path (:class:`~fender.middleware.asgi.access.FenderMiddleware`, the WSGI
wrapper) echoes the id and binds it for the request's log lines.

The id is checked against ``^[A-Za-z0-9._-]{8,128}$`` so that a client cannot inject newlines,
quotes or megabytes into every log line of the request. A W3C ``traceparent`` header, when
well-formed, puts ``trace_id`` and ``span_id`` into the log context too.
"""

from __future__ import annotations

import os
import re
from typing import Final

from fender.observability._logging import RequestContext

__all__ = [
    "HEADER",
    "accept_request_id",
    "new_request_id",
    "request_context",
]

HEADER: Final = "x-request-id"
_VALID_ID: Final = re.compile(r"[A-Za-z0-9._-]{8,128}")
# version 00: 2 hex version, 32 hex trace id, 16 hex parent id, 2 hex flags
_VALID_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


def new_request_id() -> str:
    """A fresh 32-hex-digit id (128 random bits; a quarter of uuid4().hex's cost)."""
    return os.urandom(16).hex()


def accept_request_id(value: str | bytes | None) -> str:
    """``value`` when it is a well-formed id, else a new one."""
    if value:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if _VALID_ID.fullmatch(text):
            return text
    return new_request_id()


def request_context(request_id: str, traceparent: str | bytes | None) -> RequestContext:
    """The log context of a request: its id, and the trace of a valid ``traceparent``."""
    if traceparent:
        text = traceparent.decode("latin-1") if isinstance(traceparent, bytes) else traceparent
        match = _VALID_TRACEPARENT.fullmatch(text.strip())
        if match is not None:
            version, trace_id, span_id = match.groups()
            if version != "ff" and trace_id != _ZERO_TRACE and span_id != _ZERO_SPAN:
                return RequestContext(request_id, trace_id, span_id)
    return RequestContext(request_id)
