"""What fender asks a Django project: is this its handler, which route, which setting."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["MAX_DEPTH", "django_route", "django_routes_among", "django_setting", "is_django"]

MAX_DEPTH: Final = 32
"""How deep to look through middleware (``.app``) for the framework's application, and through
mounts for sub-applications: far past any real stack, short of a cycle."""
_DJANGO_PARAMETER: Final = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def is_django(app: object) -> bool:
    """True when ``app`` is Django's WSGI or ASGI handler (through ``app``/``application``)."""
    inner: object = app
    for _ in range(MAX_DEPTH):
        if type(inner).__module__.startswith("django."):
            return True
        following = getattr(inner, "app", None) or getattr(inner, "application", None)
        if following is None or following is inner:
            return False
        inner = following
    return False


@functools.lru_cache(maxsize=2048)
def django_route(path: str) -> str | None:
    """The route template Django's URLconf matches ``path`` with, None when none does.

    ``/polls/<int:pk>/results/`` becomes ``/polls/{pk}/results/``: the label of every poll's
    page, where the raw path would make a metrics series per poll. A ``re_path`` pattern is
    its regular expression. Cached per path (a few microseconds of resolving otherwise).
    """
    from django.urls import Resolver404, resolve

    try:
        match = resolve(path)
    except Resolver404:
        return None
    except Exception:  # a broken URLconf is the app's to report, on its own requests
        return None
    route = match.route or ""
    return "/" + _DJANGO_PARAMETER.sub(r"{\1}", route.lstrip("^"))


def django_routes_among(paths: Iterable[str]) -> list[str]:
    """Which of ``paths`` the configured Django project routes itself (its URLconf resolves).

    For apps fender wraps without knowing their router: a Django project with its own
    ``/health/`` keeps it. Empty when Django is not in use. As for a router fender walks,
    only a pattern naming the path itself counts, not one with parameters or a catch-all
    (a single-page app's fallback must not take fender's probes away).
    """
    conf = sys.modules.get("django.conf")
    if conf is None or not conf.settings.configured:
        return []
    from django.urls import Resolver404, resolve

    claimed: list[str] = []
    for path in paths:
        for candidate in (path, path.rstrip("/") + "/"):  # APPEND_SLASH: /health -> /health/
            try:
                match = resolve(candidate)
            except Resolver404:
                continue
            except Exception:  # a broken URLconf is the app's to report, on its own requests
                return claimed
            if (match.route or "").strip("^$").strip("/") == candidate.strip("/"):
                claimed.append(path)
                break
    return claimed


def django_setting(name: str) -> Any:
    """A Django setting, ``None`` when missing or refused (an empty SECRET_KEY raises)."""
    settings = sys.modules["django.conf"].settings
    try:
        return getattr(settings, name, None)
    except Exception:  # ImproperlyConfigured, without importing Django's exceptions for it
        return None
