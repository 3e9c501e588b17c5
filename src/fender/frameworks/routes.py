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

The wrapper fender puts in a leaf's ``app`` is a
:class:`~fender.middleware.asgi.routes.RouteMarker` (or the rate limiter's subclass of it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from fender.middleware.asgi.routes import Unseen, describe_route, warn_unseen

__all__ = ["Leaf", "routes_of", "walk"]

_MOUNT_TAIL: Final = "/{path}"


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
                prefix + describe_route(route),
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
        prefix + getattr(context, "frontend_prefix", "") + describe_route(original),
        "fender cannot see into this route of an included router: it is not rate-limited, "
        "and its requests are labelled by what the router says of them",
    )
