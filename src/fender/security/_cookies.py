"""Session and CSRF cookies hardened (pure): ``Set-Cookie`` values rewritten, never weakened.

Only the cookies named as session or CSRF cookies are touched; each gets what it lacks of:

* ``Secure``, on https responses only (on plain http a browser would drop a Secure cookie,
  and the app would lose its session in development);
* ``HttpOnly``, on session cookies only: a CSRF cookie such as Django's ``csrftoken`` is read
  by the page's JavaScript, which HttpOnly would break (Django leaves it off for that reason);
* ``SameSite=Lax``.

An attribute the app set is kept as it is (``SameSite=Strict`` stays Strict, ``SameSite=None``
stays None): fender adds, it never weakens nor overrides.

Example:
    >>> jar = CookiePolicy()
    >>> jar.harden("session=abc; Path=/", https=True)
    'session=abc; Path=/; Secure; HttpOnly; SameSite=Lax'
    >>> jar.harden("csrftoken=xyz; SameSite=Strict", https=False)
    'csrftoken=xyz; SameSite=Strict'
    >>> jar.harden("theme=dark", https=True)
    'theme=dark'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from fender.errors import ConfigurationError

__all__ = [
    "CSRF_COOKIES",
    "HOST_PREFIX",
    "SESSION_COOKIES",
    "CookiePolicy",
    "host_cookie",
]

SESSION_COOKIES: Final = ("session", "sessionid")
"""Flask's and Starlette's session cookie (``session``), Django's (``sessionid``)."""
CSRF_COOKIES: Final = ("csrftoken", "csrf_token", "_csrf")
"""Django's, Flask-WTF's and Starlette-CSRF's usual names, and csurf's (``_csrf``)."""
HOST_PREFIX: Final = "__Host-"

# RFC 6265: a cookie name is a token; a value is cookie-octets, optionally double-quoted.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE: Final = re.compile(r'"?[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"?')
_SAME_SITE: Final = ("Strict", "Lax", "None")


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """Which cookies are hardened (see the module); built once, applied per ``Set-Cookie``."""

    session: frozenset[str] = frozenset(SESSION_COOKIES)
    csrf: frozenset[str] = frozenset(CSRF_COOKIES)

    def with_session_cookie(self, name: str) -> CookiePolicy:
        """This policy, with ``name`` (an app's configured session cookie) a session cookie."""
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigurationError("session_cookie", name, "a cookie name (an RFC 6265 token)")
        return CookiePolicy(session=self.session | {name}, csrf=self.csrf)

    def harden(self, set_cookie: str, *, https: bool) -> str:
        """``set_cookie`` (a ``Set-Cookie`` value) with what it lacks; others unchanged."""
        name = set_cookie.partition("=")[0].strip()
        session = name in self.session
        if not session and name not in self.csrf:
            return set_cookie
        present = _attributes(set_cookie)
        added = []
        if https and "secure" not in present:
            added.append("Secure")
        if session and "httponly" not in present:
            added.append("HttpOnly")
        if "samesite" not in present:
            added.append("SameSite=Lax")
        if not added:
            return set_cookie
        return "; ".join((set_cookie.rstrip().rstrip(";"), *added))


def _attributes(set_cookie: str) -> set[str]:
    """The lower-case names of a ``Set-Cookie`` value's attributes."""
    _, _, rest = set_cookie.partition(";")
    return {part.partition("=")[0].strip().lower() for part in rest.split(";")}


def host_cookie(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    http_only: bool = True,
    same_site: Literal["Strict", "Lax", "None"] = "Lax",
    path: str = "/",
    domain: str | None = None,
    secure: bool = True,
) -> str:
    """A ``Set-Cookie`` value for a ``__Host-`` cookie (bound to this host, https only).

    ``name`` gets the ``__Host-`` prefix unless it has it. Browsers accept such a cookie only
    with ``Secure``, ``Path=/`` and no ``Domain``: anything else is refused here rather than
    dropped silently by the browser.

    Example:
        >>> host_cookie("sid", "abc123", max_age=3600)
        '__Host-sid=abc123; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=3600'

    Raises:
        ConfigurationError: a name or value a cookie cannot carry, ``domain`` set, ``path``
            other than ``/``, ``secure`` off, a bad ``same_site`` or ``max_age``.
    """
    full = name if name.startswith(HOST_PREFIX) else HOST_PREFIX + name
    if not isinstance(name, str) or not _TOKEN.fullmatch(full):
        raise ConfigurationError("name", name, "a cookie name (an RFC 6265 token)")
    if not isinstance(value, str) or not _VALUE.fullmatch(value):
        raise ConfigurationError(
            "value", value, "cookie octets: no spaces, quotes, commas, semicolons or backslashes"
        )
    if domain is not None:
        raise ConfigurationError("domain", domain, "None: a __Host- cookie has no Domain")
    if path != "/":
        raise ConfigurationError("path", path, "'/': a __Host- cookie has Path=/")
    if secure is not True:
        raise ConfigurationError("secure", secure, "True: a __Host- cookie is Secure")
    if same_site not in _SAME_SITE:
        raise ConfigurationError("same_site", same_site, " or ".join(_SAME_SITE))
    parts = [f"{full}={value}", "Path=/", "Secure"]
    if http_only:
        parts.append("HttpOnly")
    parts.append(f"SameSite={same_site}")
    if max_age is not None:
        if not isinstance(max_age, int) or isinstance(max_age, bool):
            raise ConfigurationError("max_age", max_age, "an integer of seconds")
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)
