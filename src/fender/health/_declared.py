"""``@fender.health.check``: declare a check once; every fender app of the process runs it.

Declarations are kept here, not in a registry, because a registry belongs to one application
and is built from its settings (timeouts, deadline) when the app is built; each app's runtime
adds the declared checks to its registry, at build time and again at startup (for checks
declared in modules imported later).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, Unpack, overload

from fender.health._options import CheckOptions, CheckOptionsDict, decorate

__all__ = ["check", "declared"]

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_declared: list[tuple[Callable[..., Any], dict[str, Any]]] = []


@overload
def check(name: F, /) -> F: ...


@overload
def check(name: str | None = None, /, **options: Unpack[CheckOptionsDict]) -> Callable[[F], F]: ...


def check(
    name: str | F | None = None, /, **options: Unpack[CheckOptionsDict]
) -> F | Callable[[F], F]:
    """Declare a health check (sync or async; returns None, a bool, a Status or a CheckResult).

    Bare, with the check's name, or with options (:class:`CheckOptions`: name, kind, critical,
    timeout, tags, cache_ttl, component, component_type, measurement). Options left out take
    their defaults: the function's name, readiness, critical, FENDER_HEALTH_TIMEOUT.

    Example:
        >>> @check
        ... def cache() -> bool:
        ...     return True
        >>> @check("search")
        ... def search_index() -> bool:
        ...     return True
        >>> @check(name="payments", critical=False, timeout=1.0)
        ... async def payments() -> bool:
        ...     return True
    """
    return decorate(name, options, _declare)


def _declare(func: Callable[..., Any], options: CheckOptions) -> None:
    with _lock:
        _declared.append((func, options.given()))


def declared() -> tuple[tuple[Callable[..., Any], dict[str, Any]], ...]:
    """Every declaration so far: (function, options given), in order."""
    with _lock:
        return tuple(_declared)
