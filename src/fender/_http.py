"""HTTP details every layer shares, parsed or built in one place.

The forwarding headers (``X-Forwarded-For``, ``Forwarded``, ``X-Forwarded-Proto``,
``X-Forwarded-Host``) are read here only, so that the access log, the rate limiter, the edge
and the admin guard judge the same values; a header sent on several lines is one list
(RFC 9110, 5.3), joined by ``,``. WSGI servers join repeated lines into one ``HTTP_*``
variable themselves. What the values mean is decided in one place too:
:class:`fender.ratelimit.ClientIPResolver`.
"""

from __future__ import annotations

import http
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

__all__ = [
    "NO_FORWARDING",
    "PEER_KEY",
    "ROUTE_KEY",
    "Forwarding",
    "encode_headers",
    "environ_forwarding",
    "environ_headers",
    "forwarding_headers",
    "header_map",
    "status_line",
]

ROUTE_KEY: Final = "fender.route"
"""Where the matched route template is recorded, in the ASGI scope or the WSGI environ."""

PEER_KEY: Final = "fender.peer"
"""Where the edge keeps the socket peer once it has put the effective client in its place.

In the ASGI scope: the original ``scope["client"]`` (a ``(host, port)`` pair or None); in the
WSGI environ: the original ``REMOTE_ADDR``. Its presence says the request's client, scheme and
host were resolved through the trusted proxies already: layers inside read them as they are.
"""

_FORWARDING: Final = {
    b"x-forwarded-for": 0,
    b"forwarded": 1,
    b"x-forwarded-proto": 2,
    b"x-forwarded-host": 3,
}
_STATUS_LINES: dict[int, str] = {}


class Forwarding(NamedTuple):
    """The forwarding headers of one request, as sent (None: absent)."""

    x_forwarded_for: str | None = None
    forwarded: str | None = None
    x_forwarded_proto: str | None = None
    x_forwarded_host: str | None = None


NO_FORWARDING: Final = Forwarding()


def forwarding_headers(headers: Iterable[tuple[bytes, bytes]]) -> Forwarding:
    """The forwarding headers of raw (ASGI) headers; repeated lines joined by ``,``."""
    found: list[str | None] = [None, None, None, None]
    for name, value in headers:
        index = _FORWARDING.get(name)
        if index is not None:
            text = value.decode("latin-1")
            previous = found[index]
            found[index] = text if previous is None else f"{previous},{text}"
    return Forwarding(*found)


def environ_forwarding(environ: Mapping[str, Any]) -> Forwarding:
    """The forwarding headers of a WSGI environ."""
    return Forwarding(
        environ.get("HTTP_X_FORWARDED_FOR"),
        environ.get("HTTP_FORWARDED"),
        environ.get("HTTP_X_FORWARDED_PROTO"),
        environ.get("HTTP_X_FORWARDED_HOST"),
    )


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
