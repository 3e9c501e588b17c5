"""Route markers: the template of the route that answers, recorded in the scope.

The wrapper fender puts in each route's ``app`` (a :class:`RouteMarker`, or the rate
limiter's subclass of it) records the template in the scope under
:data:`~fender._http.ROUTE_KEY`, which metrics and the access event read first. A route added
after start-up (or rebuilt by FastAPI's lazy cache) has no wrapper: :func:`report_unmarked`,
called for an answered request without the marker, warns once and walks the app again
(:class:`Coverage`; the walk itself is the adapter's: :mod:`fender.frameworks.routes`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Final

from fender._http import ROUTE_KEY
from fender._types import ASGIApp, Receive, Scope, Send
from fender.observability._logging import get_logger

__all__ = [
    "Coverage",
    "RouteMarker",
    "Unseen",
    "coverage_of",
    "describe_route",
    "report_unmarked",
    "warn_unseen",
]

_NOT_ANSWERED: Final = frozenset({404, 405})  # a route matched the path, none served it
_logger = get_logger("fender.routes")

Unseen = Callable[[Any, str, str], None]
"""Called with a route fender cannot cover, its template (or path) and why."""


class RouteMarker:
    """Pure ASGI: the app of one route, recording its template in the scope (one dict store)."""

    __slots__ = ("app", "template")

    def __init__(self, app: ASGIApp, template: str) -> None:
        """Wrap the route's ``app``, known by its full ``template``."""
        self.app = app
        self.template = template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope."""
        scope[ROUTE_KEY] = self.template
        await self.app(scope, receive, send)


def describe_route(route: Any) -> str:
    """A route's path as its router knows it (a group's paths; its type when it has none)."""
    for name in ("path_format", "path", "host"):
        value = getattr(route, name, None)
        if isinstance(value, str):
            return value
    inner = [describe_route(each) for each in getattr(route, "routes", None) or ()]
    return ", ".join(inner) if inner else type(route).__qualname__


def warn_unseen(route: Any, template: str, why: str) -> None:
    """The default :data:`Unseen`: a ``route_not_covered`` warning naming the route."""
    _logger.warning(
        "route_not_covered",
        route=template,
        type=f"{type(route).__module__}.{type(route).__qualname__}",
        why=why,
    )


class Coverage:
    """What fender covers of one app's routes: the walk again, warnings once per route.

    ``rewalk`` is set by whoever wraps the routes (the Starlette adapter's
    ``apply_to_starlette``) and returns how many routes it newly wrapped.
    """

    __slots__ = ("_futile", "_warned", "rewalk")

    def __init__(self) -> None:
        """Start with nothing warned about."""
        self.rewalk: Callable[[], int] | None = None
        self._warned: set[int] = set()
        # Routes a walk could not wrap: walking again for each of their requests is futile.
        self._futile: set[int] = set()

    def unseen(self, route: Any, template: str, why: str) -> None:
        """An :data:`Unseen` warning once per route (the walk runs at install and at startup)."""
        if id(route) not in self._warned:
            self._warned.add(id(route))
            warn_unseen(route, template, why)

    def report(self, scope: Scope) -> None:
        """A request was answered by a route without fender's wrapper: warn, walk again."""
        route = scope.get("route") or scope.get("endpoint")
        # A mount (or its sub-app) answered by itself: a redirect, its own middleware.
        if route is None or getattr(route, "routes", None) or id(route) in self._futile:
            return
        if id(route) not in self._warned:
            self._warned.add(id(route))
            _logger.warning(
                "route_not_covered",
                route=describe_route(route),
                path=scope.get("path"),
                type=f"{type(route).__module__}.{type(route).__qualname__}",
                why="a request was answered by a route fender had not wrapped (added to the "
                "app after start-up, or rebuilt by the framework): not rate-limited",
                fix="fender walked the app's routes again: later requests are covered",
            )
        if self.rewalk is None:
            return
        try:
            wrapped = self.rewalk()
        except Exception:
            _logger.exception("route_walk_failed")
            wrapped = 0
        if not wrapped:
            self._futile.add(id(route))


# Keyed by the router's id, freed with the router: a Starlette router is not hashable, and the
# registry must not keep a dropped app alive.
_COVERAGE: dict[int, Coverage] = {}


def coverage_of(router: Any) -> Coverage:
    """The :class:`Coverage` of the app whose router is ``router`` (made on first use)."""
    key = id(router)
    found = _COVERAGE.get(key)
    if found is None:
        found = _COVERAGE[key] = Coverage()
        weakref.finalize(router, _COVERAGE.pop, key, None)
    return found


def report_unmarked(scope: Scope, status: int) -> None:
    """Call for a request of a routed app whose scope has no :data:`ROUTE_KEY`.

    Cheap when nothing is wrong: only a request a route answered (it named itself or its
    endpoint in the scope, and the status is not a 404 or 405) goes further.
    """
    if status in _NOT_ANSWERED or ("route" not in scope and "endpoint" not in scope):
        return
    router = scope.get("router")
    coverage = None if router is None else _COVERAGE.get(id(router))
    if coverage is not None:
        coverage.report(scope)
