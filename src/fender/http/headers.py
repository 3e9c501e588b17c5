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

from collections.abc import Callable, Iterable
from typing import AnyStr, Final

from fender.security import CookiePolicy, HeaderSet, new_nonce
from fender.security._headers import DROPPED

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
    harden = None
    if cookies is not None:
        policy = cookies

        def harden(value: bytes) -> bytes:
            return policy.harden(value.decode("latin-1"), https=https).encode("latin-1")

    if headers is None:
        return _merge(
            app_headers,
            ours=(),
            names=frozenset(),
            drop=_DROP_BYTES,
            set_cookie=_SET_COOKIE_BYTES,
            harden=harden,
        )[0]
    out, present = _merge(
        app_headers,
        ours=headers.asgi_https if https else headers.asgi_http,
        names=headers.asgi_names,
        drop=_DROP_BYTES,
        set_cookie=_SET_COOKIE_BYTES,
        harden=harden,
    )
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
    harden = None
    if cookies is not None:
        policy = cookies

        def harden(value: str) -> str:
            return policy.harden(value, https=https)

    if headers is None:
        return _merge(
            app_headers,
            ours=(),
            names=frozenset(),
            drop=_DROP_TEXT,
            set_cookie=_SET_COOKIE_TEXT,
            harden=harden,
        )[0]
    out, present = _merge(
        app_headers,
        ours=headers.wsgi_https if https else headers.wsgi_http,
        names=headers.wsgi_names,
        drop=_DROP_TEXT,
        set_cookie=_SET_COOKIE_TEXT,
        harden=harden,
    )
    parts = headers.csp_https if https else headers.csp_http
    if parts is not None and (present is None or headers.csp_name.lower() not in present):
        out.append((headers.csp_name, (nonce or new_nonce()).join(parts)))
    return out


def _merge(
    app_headers: Iterable[tuple[AnyStr, AnyStr]],
    *,
    ours: Iterable[tuple[AnyStr, AnyStr]],
    names: frozenset[AnyStr],
    drop: frozenset[AnyStr],
    set_cookie: AnyStr,
    harden: Callable[[AnyStr], AnyStr] | None,
) -> tuple[list[tuple[AnyStr, AnyStr]], set[AnyStr] | None]:
    """The app's headers less ``drop``, cookies hardened, then ``ours`` the app did not set.

    Also the (lower-case) names among ``names`` the app set itself, None for none.
    """
    out: list[tuple[AnyStr, AnyStr]] = []
    present: set[AnyStr] | None = None
    for name, value in app_headers:
        low = name.lower()
        if low in drop:
            continue
        if low in names:
            if present is None:
                present = set()
            present.add(low)
        elif low == set_cookie and harden is not None:
            value = harden(value)  # noqa: PLW2901  (the hardened value replaces it)
        out.append((name, value))
    if present is None:
        out.extend(ours)
    else:
        out.extend(pair for pair in ours if pair[0].lower() not in present)
    return out, present
