"""The routes of a Starlette or FastAPI app as fender sees them: each leaf, its full template.

:func:`walk` goes through an app's routes once, at start-up, and yields every HTTP leaf with
its full template (the prefixes of the mounts and included routers above it), the object whose
``app`` attribute fender replaces, and the endpoint (where ``@rate_limit`` marks are read):

* a ``Route`` (a FastAPI ``APIRoute`` too): a leaf;
* a ``Mount`` of routes (a sub-application, a ``Router``): its routes, under its prefix (path
  parameters stay ``{name}``); a ``Mount`` of a plain ASGI app (``StaticFiles``, a WSGI app):
  a leaf, ``<prefix>/{path}``;
* a ``Host``: its routes; a ``Host`` of a plain ASGI app: a leaf, ``<prefix>/{path}``;
* FastAPI's lazy included routers (FastAPI >= 0.137): one leaf per route and per inclusion,
  from ``effective_route_contexts()``. The ``APIRoute`` object is shared by every inclusion of
  its router (``/api/v1`` and ``/api/v2``); what each inclusion calls is its own context's
  ``app`` (or, for a plain route, its own copy's ``app``), so that is what is wrapped;
* websocket routes: skipped (not HTTP);
* anything else: a ``route_not_covered`` warning naming it (nothing fender adds reaches it),
  such as the frontend routes of FastAPI's ``frontend()``, which it keeps apart from
  ``routes`` (:func:`routes_of` adds them, to say so).

The wrapper fender puts in a leaf's ``app`` (a :class:`RouteMarker`, or the rate limiter's
subclass of it) records the template in the scope under :data:`ROUTE_KEY`, which metrics and
the access event read first. A route added after start-up (or rebuilt by FastAPI's lazy cache)
has no wrapper: :func:`report_unmarked`, called for an answered request without the marker,
warns once and walks the app again (:class:`Coverage`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from fender._types import ASGIApp, Receive, Scope, Send
from fender.observability.logging import get_logger

__all__ = [
    "ROUTE_KEY",
    "Coverage",
    "Leaf",
    "RouteMarker",
    "Unseen",
    "coverage_of",
    "report_unmarked",
    "routes_of",
    "walk",
    "warn_unseen",
]

ROUTE_KEY: Final = "fender.route"
"""Scope key of the full template of the route that answers (set by :class:`RouteMarker`)."""

_MOUNT_TAIL: Final = "/{path}"
_NOT_ANSWERED: Final = frozenset({404, 405})  # a route matched the path, none served it
_logger = get_logger("fender.routes")

Unseen = Callable[[Any, str, str], None]
"""Called with a route fender cannot cover, its template (or path) and why."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """One HTTP route of an app as fender wraps it.

    Attributes:
        template: the full route template (``/api/v1/users/{user_id}``).
        holder: the object whose ``app`` attribute is the route's ASGI app, per inclusion.
        endpoint: where ``@rate_limit`` marks are read (the view; the mounted app of a mount).
    """

    template: str
    holder: Any
    endpoint: object | None


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


def _describe(route: Any) -> str:
    """A route's path as its router knows it (a group's paths; its type when it has none)."""
    for name in ("path_format", "path", "host"):
        value = getattr(route, name, None)
        if isinstance(value, str):
            return value
    inner = [_describe(each) for each in getattr(route, "routes", None) or ()]
    return ", ".join(inner) if inner else type(route).__qualname__


def warn_unseen(route: Any, template: str, why: str) -> None:
    """The default :data:`Unseen`: a ``route_not_covered`` warning naming the route."""
    _logger.warning(
        "route_not_covered",
        route=template,
        type=f"{type(route).__module__}.{type(route).__qualname__}",
        why=why,
    )


def routes_of(router: Any) -> list[Any]:
    """What ``router`` routes to: its ``routes``, then FastAPI's low-priority (frontend) ones."""
    return [*router.routes, *getattr(router, "_low_priority_routes", ())]


def walk(
    routes: Iterable[Any], *, prefix: str = "", unseen: Unseen = warn_unseen
) -> Iterator[Leaf]:
    """Every HTTP leaf under ``routes`` (see :func:`routes_of`), in routing order.

    Args:
        routes: the routes to walk.
        prefix: the template of what is above them (a mount's path).
        unseen: called for each route fender cannot see into (see the module).
    """
    return _walk(routes, prefix, unseen, shared=False)


def _walk(routes: Iterable[Any], prefix: str, unseen: Unseen, *, shared: bool) -> Iterator[Leaf]:
    """See :func:`walk`; ``shared``: under a lazy inclusion, whose copies share their insides."""
    from starlette.routing import Host, Mount, Route, WebSocketRoute

    for route in routes:
        if isinstance(route, Route):
            yield Leaf(prefix + route.path_format, route, route.endpoint)
        elif isinstance(route, WebSocketRoute):
            continue
        elif isinstance(route, Mount):
            yield from _mount(route, prefix, unseen, shared=shared)
        elif isinstance(route, Host):
            if route.routes:
                yield from _walk(route.routes, prefix, unseen, shared=shared)
            else:
                yield Leaf(prefix + _MOUNT_TAIL, route, route.app)
        elif callable(getattr(route, "effective_route_contexts", None)):
            for context in route.effective_route_contexts():
                yield from _included(context, prefix, unseen)
            for context in getattr(route, "effective_low_priority_routes", list)():
                yield from _included(context, prefix, unseen)
        else:
            unseen(
                route,
                prefix + _describe(route),
                "fender cannot see into this route type: it is not rate-limited, and its "
                "requests are labelled by what the router says of them",
            )


def _mount(mount: Any, prefix: str, unseen: Unseen, *, shared: bool) -> Iterator[Leaf]:
    # path_format drops the convertors: "/orgs/{org_id:int}" -> "/orgs/{org_id}/{path}"
    template = prefix + mount.path_format
    inner = mount.routes
    if not inner:
        yield Leaf(template, mount, mount.app)
        return
    if shared:
        # The copies FastAPI makes of this mount for each inclusion share the routes inside,
        # and a route has one wrapper: the mount as a whole is the leaf of each inclusion.
        unseen(
            mount,
            template,
            "a mount of routes inside an included router is limited and labelled as a whole "
            "(its routes' own @rate_limit marks are not applied); mount it on the app instead",
        )
        yield Leaf(template, mount, mount.app)
        return
    yield from _walk(inner, template.removesuffix(_MOUNT_TAIL), unseen, shared=False)


def _included(context: Any, prefix: str, unseen: Unseen) -> Iterator[Leaf]:
    """The leaves of one route of a FastAPI inclusion (an ``_EffectiveRouteContext``)."""
    copy = getattr(context, "starlette_route", None)
    if copy is not None:  # a plain route, websocket, mount or host, copied per inclusion
        yield from _walk((copy,), prefix, unseen, shared=True)
        return
    template = getattr(context, "path_format", None)
    if getattr(context, "app", None) is not None and isinstance(template, str) and template:
        original = getattr(context, "original_route", None)
        endpoint = getattr(context, "endpoint", None) or getattr(original, "endpoint", None)
        yield Leaf(prefix + template, context, endpoint)
        return
    original = getattr(context, "original_route", context)
    unseen(
        original,
        prefix + getattr(context, "frontend_prefix", "") + _describe(original),
        "fender cannot see into this route of an included router: it is not rate-limited, "
        "and its requests are labelled by what the router says of them",
    )


class Coverage:
    """What fender covers of one app's routes: the walk again, warnings once per route.

    ``rewalk`` is set by whoever wraps the routes (:func:`~fender.web.ratelimit.apply_to_starlette`)
    and returns how many routes it newly wrapped.
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
                route=_describe(route),
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
