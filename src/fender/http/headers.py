"""Response security headers, framework-free: the app's headers in, the headers to send out.

The policy (:class:`~fender.security.SecurityHeaders`) was compiled at start-up; per request
this module only picks the list for the scheme, splices the nonce into a nonce'd CSP (one
join), drops ``Server`` and ``X-Powered-By``, hardens session and CSRF cookies, and leaves
the app the last word: a header the app set itself (its own CSP, its own X-Frame-Options) is
kept, and fender's of that name is not added.

One function says which scheme a request has: :func:`is_https`, over ASGI's
``scope["scheme"]`` or WSGI's ``environ["wsgi.url_scheme"]``, as the trusted-proxy layer left
them (it rewrites them before the app runs for requests through a trusted proxy; an untrusted
client's ``X-Forwarded-Proto`` is never read here).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from fender.security import CookiePolicy
from fender.security._headers import DROPPED, HeaderSet, new_nonce

__all__ = ["ENDPOINT_KEY", "NONCE_KEY", "asgi_headers", "is_https", "wsgi_headers"]

ENDPOINT_KEY: Final = "fender.endpoint"
"""WSGI environ key of the view function that answered (the Flask adapter sets it)."""
NONCE_KEY: Final = "fender.csp_nonce"
"""WSGI environ key of the request's CSP nonce (set when the policy uses one)."""

_DROP_BYTES: Final = frozenset(name.encode() for name in DROPPED)
_DROP_TEXT: Final = frozenset(DROPPED)
_SET_COOKIE_BYTES: Final = b"set-cookie"
_SET_COOKIE_TEXT: Final = "set-cookie"
_SECURE_SCHEMES: Final = frozenset({"https", "wss"})
_NO_BYTES: Final[frozenset[bytes]] = frozenset()
_NO_TEXT: Final[frozenset[str]] = frozenset()


def is_https(scheme: object) -> bool:
    """True when a request's effective scheme is https (or wss).

    ``scheme``: ASGI's ``scope["scheme"]`` or WSGI's ``environ["wsgi.url_scheme"]``.

    >>> is_https("https"), is_https("http"), is_https(None)
    (True, False, False)
    """
    return scheme in _SECURE_SCHEMES


def asgi_headers(
    app_headers: Iterable[tuple[bytes, bytes]],
    headers: HeaderSet | None,
    *,
    https: bool,
    nonce: str | None,
    cookies: CookiePolicy | None,
) -> list[tuple[bytes, bytes]]:
    """An ASGI response's headers: the app's (filtered, cookies hardened) plus ``headers``'.

    ``headers`` None: the route turned fender's headers off (only the filtering is done).
    ``nonce``: the request's, for a nonce'd CSP.
    """
    # One loop written out for each of bytes and text: this runs on every response, and a
    # shared generic loop with callbacks costs a third more.
    names = _NO_BYTES if headers is None else headers.asgi_names
    out: list[tuple[bytes, bytes]] = []
    present: set[bytes] | None = None
    for pair in app_headers:
        low = pair[0].lower()
        if low in _DROP_BYTES:
            continue
        if low in names:
            if present is None:
                present = set()
            present.add(low)
        elif low == _SET_COOKIE_BYTES and cookies is not None:
            value = cookies.harden(pair[1].decode("latin-1"), https=https).encode("latin-1")
            pair = (pair[0], value)  # noqa: PLW2901  (the hardened cookie replaces it)
        out.append(pair)
    if headers is None:
        return out
    ours = headers.asgi_https if https else headers.asgi_http
    if present is None:
        out += ours
    else:
        out += [pair for pair in ours if pair[0] not in present]
    parts = headers.csp_https if https else headers.csp_http
    if parts is not None and (present is None or headers.asgi_csp_name not in present):
        value = (nonce or new_nonce()).join(parts).encode("latin-1")
        out.append((headers.asgi_csp_name, value))
    return out


def wsgi_headers(
    app_headers: Iterable[tuple[str, str]],
    headers: HeaderSet | None,
    *,
    https: bool,
    nonce: str | None,
    cookies: CookiePolicy | None,
) -> list[tuple[str, str]]:
    """A WSGI response's headers: as :func:`asgi_headers`, in text."""
    names = _NO_TEXT if headers is None else headers.wsgi_names
    out: list[tuple[str, str]] = []
    present: set[str] | None = None
    for pair in app_headers:
        low = pair[0].lower()
        if low in _DROP_TEXT:
            continue
        if low in names:
            if present is None:
                present = set()
            present.add(low)
        elif low == _SET_COOKIE_TEXT and cookies is not None:
            pair = (pair[0], cookies.harden(pair[1], https=https))  # noqa: PLW2901
        out.append(pair)
    if headers is None:
        return out
    ours = headers.wsgi_https if https else headers.wsgi_http
    if present is None:
        out += ours
    else:
        out += [pair for pair in ours if pair[0].lower() not in present]
    parts = headers.csp_https if https else headers.csp_http
    if parts is not None and (present is None or headers.wsgi_csp_name not in present):
        out.append((headers.csp_name, (nonce or new_nonce()).join(parts)))
    return out
