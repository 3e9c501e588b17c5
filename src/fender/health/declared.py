"""``@fender.health.check(...)``: declare a check once; every fender app of the process runs it.

Declarations are kept here, not in a registry, because a registry belongs to one application
and is built from its settings (timeouts, deadline) when the app is built; each app's runtime
adds the declared checks to its registry, at build time and again at startup (for checks
declared in modules imported later).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from fender.health.checks import Kind

__all__ = ["check", "declared"]

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_declared: list[tuple[Callable[..., Any], dict[str, Any]]] = []


def check(
    *,
    name: str | None = None,
    kind: Kind | str | None = None,
    critical: bool | None = None,
    timeout: float | None = None,
    tags: Iterable[str] | None = None,
    cache_ttl: float | None = None,
) -> Callable[[F], F]:
    """Declare a health check (sync or async; returns None, a bool, a Status or a CheckResult).

    Options left out take their defaults: readiness, critical, FENDER_HEALTH_TIMEOUT.

    Example:
        >>> @check(name="payments", critical=False, timeout=1.0)
        ... async def payments() -> bool:
        ...     return True
    """
    options = {
        "name": name,
        "kind": kind,
        "critical": critical,
        "timeout": timeout,
        "tags": None if tags is None else tuple(tags),
        "cache_ttl": cache_ttl,
    }

    def register(func: F) -> F:
        with _lock:
            _declared.append((func, {k: v for k, v in options.items() if v is not None}))
        return func

    return register


def declared() -> tuple[tuple[Callable[..., Any], dict[str, Any]], ...]:
    """Every declaration so far: (function, options), in order."""
    with _lock:
        return tuple(_declared)
