"""HTTP details every layer shares, parsed or built in one place.

The forwarding headers (``X-Forwarded-For``, ``Forwarded``) are read here only, so that the
access log, the rate limiter and the admin guard name the same client; a header sent on
several lines is one list (RFC 9110, 5.3), joined by ``,``. WSGI servers join repeated lines
into one ``HTTP_*`` variable themselves.
"""

from __future__ import annotations

import http
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "ROUTE_KEY",
    "encode_headers",
    "environ_forwarding",
    "environ_headers",
    "forwarding_headers",
    "header_map",
    "status_line",
]

ROUTE_KEY: Final = "fender.route"
"""Where the matched route template is recorded, in the ASGI scope or the WSGI environ."""

_XFF: Final = b"x-forwarded-for"
_FORWARDED: Final = b"forwarded"
_STATUS_LINES: dict[int, str] = {}


def forwarding_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """The ``X-Forwarded-For`` and ``Forwarded`` values of raw (ASGI) headers, or None each."""
    xff: list[str] = []
    forwarded: list[str] = []
    for name, value in headers:
        if name == _XFF:
            xff.append(value.decode("latin-1"))
        elif name == _FORWARDED:
            forwarded.append(value.decode("latin-1"))
    return (",".join(xff) or None, ",".join(forwarded) or None)


def environ_forwarding(environ: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The ``X-Forwarded-For`` and ``Forwarded`` values of a WSGI environ, or None each."""
    return environ.get("HTTP_X_FORWARDED_FOR"), environ.get("HTTP_FORWARDED")


def header_map(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Raw (ASGI) headers as ``{lowercase name: value}``, repeated lines joined by ``,``."""
    joined: dict[str, str] = {}
    for name, value in headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        joined[key] = f"{joined[key]},{text}" if key in joined else text
    return joined


def environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """A WSGI environ's request headers as ``{lowercase name: value}``."""
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return headers


def encode_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """``(name, value)`` text pairs as ASGI raw headers (lowercase names)."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def status_line(status: int) -> str:
    """``200`` -> ``"200 OK"`` (a WSGI status line; unknown codes read ``Unknown``)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        line = _STATUS_LINES.setdefault(status, f"{status} {phrase}")
    return line
