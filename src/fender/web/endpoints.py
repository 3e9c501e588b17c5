"""fender's own endpoints, free of any framework: a request in, a status, headers, body out.

The ASGI and WSGI adapters translate to and from :class:`Request` and :class:`Response`; every
endpoint (``/metrics`` now, the health family in its own module) is written once, here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Final

import orjson

from fender.errors import ConfigurationError
from fender.observability import metrics

__all__ = ["Endpoint", "Endpoints", "Request", "Response", "json_response", "metrics_endpoint"]

NO_STORE: Final = ("cache-control", "no-store")
JSON_TYPE: Final = "application/json"


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """What an endpoint sees of a request. Header names are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    client: str | None = None
    query: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """What an endpoint answers."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def json_response(
    status: int, payload: object, *, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """A JSON response that no cache keeps."""
    body = orjson.dumps(payload, default=str)
    return Response(status, (("content-type", JSON_TYPE), NO_STORE, *headers), body)


def error_response(status: int, error: str, request_id: str | None, **extra: object) -> Response:
    """The JSON error body fender answers with: ``{"error": ..., "request_id": ...}``."""
    return json_response(status, {"error": error, "request_id": request_id, **extra})


Endpoint = Callable[[Request], Response]


def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: Prometheus text format, or OpenMetrics when ``Accept`` asks for it."""
    body, content_type = metrics.exposition(request.headers.get("accept"))
    return Response(200, (("content-type", content_type), NO_STORE), body)


class Endpoints:
    """A table of fender's paths; looked up with one dict access per request."""

    __slots__ = ("_routes",)

    def __init__(self) -> None:
        """An empty table."""
        self._routes: dict[str, tuple[frozenset[str], Endpoint]] = {}

    def add(self, path: str, endpoint: Endpoint, methods: tuple[str, ...] = ("GET",)) -> None:
        """Serve ``endpoint`` at ``path`` (``GET`` also answers ``HEAD``)."""
        if not path.startswith("/"):
            raise ConfigurationError("path", path, "an absolute path starting with /")
        if path in self._routes:
            raise ConfigurationError("path", path, "a path not already served by fender")
        allowed = set(methods)
        if "GET" in allowed:
            allowed.add("HEAD")
        self._routes[path] = (frozenset(allowed), endpoint)

    def __contains__(self, path: object) -> bool:
        """True when fender serves ``path``."""
        return path in self._routes

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path served, in the order added."""
        return tuple(self._routes)

    def handle(self, request: Request) -> Response:
        """Answer ``request`` (whose path must be in the table); 405 for another method."""
        allowed, endpoint = self._routes[request.path]
        if request.method not in allowed:
            return json_response(
                405,
                {"error": "method_not_allowed", "allowed": sorted(allowed)},
                headers=(("allow", ", ".join(sorted(allowed))),),
            )
        response = endpoint(request)
        if request.method == "HEAD":
            return dataclasses.replace(response, body=b"")
        return response
