"""Checks and normalisations of single setting values, called by the model's validators.

Each raises :class:`ValueError` with what was expected; :func:`fender.settings.load_settings`
turns it into a :class:`~fender.errors.ConfigurationError` naming the variable.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from fender.settings._paths import PATH

__all__ = [
    "POSTGRES_DRIVER",
    "REDIS_SCHEMES",
    "check_bearer_token",
    "check_deny_status",
    "check_path",
    "check_url",
    "key_names",
    "normalise_env",
    "normalise_level",
]

REDIS_SCHEMES: Final = frozenset({"redis", "rediss", "unix", "redis+sentinel", "redis+cluster"})
POSTGRES_DRIVER: Final = "postgresql+psycopg"
# Heroku-style and driverless PostgreSQL schemes, rewritten to POSTGRES_DRIVER.
_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
_DRIVER_SCHEME = re.compile(r"([a-z][a-z0-9]*\+[a-z0-9_]+)://")
_URL_EXAMPLES = {
    "database_url": "postgresql+psycopg://user@host/db or sqlite:///app.db",
    "redis_url": "redis://localhost:6379/0",
}
# RFC 6750 b64token: all a client can send after "Bearer " (an HTTP header is read as latin-1,
# so a token outside ASCII could never match).
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ENV_ALIASES = {"dev": "development", "prod": "production"}
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def normalise_env(value: object) -> object:
    """``" Prod "`` -> ``"production"``; anything else is left to the type check."""
    if isinstance(value, str):
        value = value.strip().lower()
        return _ENV_ALIASES.get(value, value)
    return value


def normalise_level(value: object) -> object:
    """``"warn"`` -> ``"WARNING"``, other names upper-cased; the rest to the type check."""
    if isinstance(value, str):
        value = value.strip().upper()
        return "WARNING" if value == "WARN" else value
    return value


def check_deny_status(value: int) -> int:
    """The answer to an unauthorized request: 401 or 404."""
    if value not in (401, 404):
        raise ValueError("401 or 404")
    return value


def check_path(value: str, field: str) -> str:
    """An endpoint path (``metrics_path``) or path prefix (``health_prefix``)."""
    example = "/health" if field == "health_prefix" else "/metrics"
    if not PATH.fullmatch(value):
        raise ValueError(f"a path such as {example}: a leading /, then only A-Z a-z 0-9 . _ ~ / -")
    # The prefix has sub-paths appended (/live, /ready): a trailing / would double it.
    if field == "health_prefix" and value.endswith("/"):
        raise ValueError(f"a path without a trailing /, such as {example}")
    return value


def check_bearer_token(token: str) -> None:
    """A token a client can send after ``Bearer ``; the message never quotes it (a secret)."""
    if not _BEARER_TOKEN.fullmatch(token):
        raise ValueError(
            "a bearer token: only A-Z a-z 0-9 - . _ ~ + / (then optional trailing =), as "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))' prints"
        )


def check_url(value: str, field: str) -> str:
    """A ``database_url`` or ``redis_url`` with a scheme fender reads; empty passes."""
    if not value:
        return value
    # Not urlsplit's scheme alone: it refuses "_", which SQLAlchemy drivers have
    # (postgresql+psycopg_async, oracle+cx_oracle), and such a URL must not stop the boot.
    parts = urlsplit(value)
    scheme = parts.scheme or (m[1] if (m := _DRIVER_SCHEME.match(value)) else "")
    if not scheme:
        raise ValueError(f"a URL with a scheme, like {_URL_EXAMPLES[field]}")
    if field == "redis_url" and scheme not in REDIS_SCHEMES:
        raise ValueError(f"one of the schemes {', '.join(sorted(REDIS_SCHEMES))}")
    if field == "database_url" and scheme in _POSTGRES_SCHEMES:
        # Without a driver SQLAlchemy picks psycopg2 (and knows no "postgres"); fender's
        # postgres extra ships psycopg 3. fender.db reads the URL as written again when
        # it was the environment's, and uses whichever driver is installed.
        return POSTGRES_DRIVER + value[len(scheme) :]
    return value


def key_names(value: str) -> tuple[str, ...]:
    """The names of a comma-separated list (FENDER_LOG_REDACT_KEYS); empty items are skipped."""
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    for name in names:
        if not _KEY_NAME.fullmatch(name):
            raise ValueError(
                f"comma-separated key names of letters, digits, _ . and - (not {name!r})"
            )
    return names
