"""fender's own endpoints, free of any framework: a request in, a status, headers, body out.

The ASGI and WSGI adapters translate to and from :class:`Request` and :class:`Response`; every
endpoint (``/metrics``, the health family, each in its own module) is written once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any, Final, Protocol

import orjson

from fender._flow import adrive, drive
from fender.errors import ConfigurationError

__all__ = [
    "Effect",
    "Endpoint",
    "Endpoints",
    "Flow",
    "Gate",
    "Request",
    "Response",
    "drive_async",
    "drive_sync",
    "error_response",
    "json_response",
]

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


class Effect(Protocol):
    """I/O an endpoint asks its driver to do (run health checks...), in either world."""

    async def run_async(self) -> Any:
        """Do it on the running event loop (ASGI)."""
        ...

    def run_sync(self) -> Any:
        """Do it blocking the calling thread (WSGI)."""
        ...


class Gate(Protocol):
    """Who may learn that a protected path exists (the admin guard)."""

    def authorized(self, request: Request, *, strict: bool = False) -> bool:
        """True when ``request`` may see the endpoint (silently: no event)."""
        ...

    def deny(self, request: Request | None = None) -> Response:
        """The answer to whoever may not: the same as for a path that does not exist."""
        ...


# An endpoint answers at once, or is a generator that yields effects, receives their results
# and returns the response: one algorithm, driven by an async (ASGI) or a sync (WSGI) driver.
Flow = Generator[Effect, Any, Response]
Endpoint = Callable[[Request], Response | Flow]


async def drive_async(result: Response | Flow) -> Response:
    """Run an endpoint's result to its response on the event loop."""
    if isinstance(result, Response):
        return result
    return await adrive(result, _run_async)


def drive_sync(result: Response | Flow) -> Response:
    """Run an endpoint's result to its response, blocking."""
    if isinstance(result, Response):
        return result
    return drive(result, _run_sync)


def _run_async(effect: Effect) -> Any:
    return effect.run_async()


def _run_sync(effect: Effect) -> Any:
    return effect.run_sync()


class Endpoints:
    """A table of fender's paths; looked up with one dict access per request."""

    __slots__ = ("_gates", "_routes", "_settings")

    def __init__(self) -> None:
        """An empty table."""
        self._routes: dict[str, tuple[frozenset[str], Endpoint]] = {}
        self._settings: dict[str, str] = {}
        self._gates: dict[str, Gate] = {}

    def add(
        self,
        path: str,
        endpoint: Endpoint,
        methods: tuple[str, ...] = ("GET",),
        *,
        setting: str = "path",
        gate: Gate | None = None,
    ) -> None:
        """Serve ``endpoint`` at ``path`` (``GET`` also answers ``HEAD``).

        Args:
            path: An absolute path.
            endpoint: What answers there.
            methods: The methods it answers.
            setting: The variable ``path`` comes from (``FENDER_METRICS_PATH``...), named by
                the error when the path is taken twice; the default means a fixed path.
            gate: For a protected endpoint: whoever it does not let in gets its denial for
                another method too, not a 405 whose ``Allow`` says the path exists.

        Raises:
            ConfigurationError: ``path`` is not absolute or already served; it names
                ``setting``, and the variable behind the path already served.
        """
        if not path.startswith("/"):
            raise ConfigurationError(setting, path, "an absolute path starting with /")
        if path in self._routes:
            owner = self._settings[path]
            served = "a fixed path" if owner == "path" else f"served for {owner}"
            raise ConfigurationError(
                setting, path, f"a path not already served by fender ({path} is {served})"
            )
        allowed = set(methods)
        if "GET" in allowed:
            allowed.add("HEAD")
        self._routes[path] = (frozenset(allowed), endpoint)
        self._settings[path] = setting
        if gate is not None:
            self._gates[path] = gate

    def yield_to(self, app_paths: Iterable[str]) -> list[tuple[str, str]]:
        """Stop serving the paths the app serves itself: the app's own route wins.

        fender answers its paths before the app sees the request, so an app's own ``/status``
        or ``/health`` would otherwise vanish without a word. A trailing slash does not count.

        Returns:
            ``(path, setting)`` of each path given up, ``setting`` naming the variable that
            moves fender's endpoint elsewhere (``path`` for a fixed path).
        """
        wanted = {path.rstrip("/") or "/" for path in app_paths}
        given_up = [(path, self._settings[path]) for path in self._routes if path in wanted]
        for path, _setting in given_up:
            del self._routes[path]
            del self._settings[path]
            self._gates.pop(path, None)
        return given_up

    def __contains__(self, path: object) -> bool:
        """True when fender serves ``path``."""
        return path in self._routes

    @property
    def table(self) -> Mapping[str, object]:
        """The live table by path (``path in table`` without a method call per request)."""
        return self._routes

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path served, in the order added."""
        return tuple(self._routes)

    @property
    def protected(self) -> tuple[str, ...]:
        """The paths behind a gate (the admin guard), in the order added."""
        return tuple(path for path in self._routes if path in self._gates)

    def handle(self, request: Request) -> Response | Flow:
        """Answer ``request`` (whose path must be in the table); 405 for another method.

        A protected path answers another method as it answers whoever it does not let in,
        unless the request is let in. Drive the result with :func:`drive_async` or
        :func:`drive_sync`.
        """
        allowed, endpoint = self._routes[request.path]
        if request.method not in allowed:
            gate = self._gates.get(request.path)
            if gate is not None and not gate.authorized(request):
                return gate.deny(request)
            return json_response(
                405,
                {"error": "method_not_allowed", "allowed": sorted(allowed)},
                headers=(("allow", ", ".join(sorted(allowed))),),
            )
        result = endpoint(request)
        if request.method != "HEAD":
            return result
        if isinstance(result, Response):
            return dataclasses.replace(result, body=b"")
        return _without_body(result)


def _without_body(flow: Flow) -> Flow:
    response = yield from flow
    return dataclasses.replace(response, body=b"")
