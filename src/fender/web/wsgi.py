"""WSGI integration: the same request path as ASGI, in one wrapper, and ``wrap()``.

Order is the ASGI one: request id -> fender's endpoints -> access (metrics, access event,
JSON 500) -> the app. The request's log context stays bound while the server iterates the
response body and is released when it calls ``close()``, where the request is recorded.
"""

from __future__ import annotations

import contextlib
import http
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from fender._types import StartResponse, WSGIApp, WSGIEnviron
from fender.observability.logging import bind_request, get_logger, reset_request
from fender.settings import Settings
from fender.web.endpoints import Request, Response, drive_sync, error_response, json_response
from fender.web.observe import UNMATCHED
from fender.web.requestid import accept_request_id, request_context
from fender.web.runtime import Runtime, build_runtime

__all__ = ["ROUTE_KEY", "FenderWSGI", "route_of_environ", "status_line", "wrap"]

ROUTE_KEY: Final = "fender.route"
"""Where an adapter puts the matched route template in the WSGI environ."""

_logger = get_logger("fender.errors")
_STATUS_LINES: dict[int, str] = {}


def status_line(status: int) -> str:
    """``200`` -> ``"200 OK"``."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        line = _STATUS_LINES.setdefault(status, f"{status} {phrase}")
    return line


def route_of_environ(environ: WSGIEnviron, status: int, *, routed: bool = False) -> str:
    """The route template an adapter recorded, else ``unmatched`` or the raw path.

    ``unmatched`` for a 404, and for anything when the app has a router (``routed``: Flask's
    405s and redirects); the raw path for a bare app's other answers.
    """
    route = environ.get(ROUTE_KEY)
    if route is not None:
        return str(route)
    if routed or status == 404:  # noqa: PLR2004
        return UNMATCHED
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


def _request(environ: WSGIEnviron) -> Request:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return Request(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        path=str(environ.get("PATH_INFO", "")),
        headers=headers,
        client=environ.get("REMOTE_ADDR"),
        query=str(environ.get("QUERY_STRING", "")),
    )


def _start(
    start_response: StartResponse, response: Response, request_id: str, exc: Any = None
) -> None:
    headers = [*response.headers, ("X-Request-ID", request_id)]
    if exc is None:
        start_response(status_line(response.status), headers)
    else:
        start_response(status_line(response.status), headers, exc)


class _Recorded:
    """The app's response body, recording the request when the server closes it."""

    __slots__ = ("_body", "_call", "_done", "_start", "_start_response")

    def __init__(
        self,
        body: Iterable[bytes],
        call: _Call,
        start: float,
        start_response: StartResponse | None = None,
    ) -> None:
        self._body = body
        self._call = call
        self._start = start
        self._start_response = start_response
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        call = self._call
        try:
            for chunk in self._body:
                call.bytes += len(chunk)
                yield chunk
        except Exception:
            _logger.exception("unhandled_exception", method=call.method, path=call.path)
            if call.status or self._start_response is None:
                # Headers may already be out; the server cuts the connection (logged above).
                call.status = call.status or 500
                raise
            # A lazy app failed before starting its response: the JSON 500, not the server's.
            request_id = call.environ.get("fender.request_id", "")
            response = error_response(500, "internal_error", request_id)
            call.status = 500
            _start(self._start_response, response, request_id)
            call.bytes += len(response.body)
            yield response.body

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._call.finish(self._start)


class _Call:
    """State of one request through :class:`FenderWSGI`."""

    __slots__ = ("active", "bytes", "environ", "method", "path", "status", "token", "wsgi")

    def __init__(self, wsgi: FenderWSGI, environ: WSGIEnviron, token: Any) -> None:
        self.wsgi = wsgi
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET"))
        self.path = environ.get("PATH_INFO", "")
        self.token = token
        self.status = 0
        self.bytes = 0
        self.active: Any = None

    def finish(self, start: float) -> None:
        try:
            if self.active is not None:
                self.active.dec()
            environ = self.environ
            status = self.status or 500
            observer = self.wsgi.observer
            observer.finish(
                environ["fender.request_id"],
                self.method,
                route_of_environ(environ, status, routed=self.wsgi.routed),
                status,
                time.perf_counter() - start,
                self.bytes,
                observer.client(
                    environ.get("REMOTE_ADDR"),
                    environ.get("HTTP_X_FORWARDED_FOR"),
                    environ.get("HTTP_FORWARDED"),
                ),
                environ.get("HTTP_USER_AGENT"),
            )
        finally:
            # (not contextlib.suppress: it costs 1 µs per request here)
            try:  # noqa: SIM105
                reset_request(self.token)
            except ValueError:  # closed from another context than bound
                pass


class FenderWSGI:
    """WSGI middleware: request ids, fender's endpoints, metrics, access events, JSON 500s."""

    def __init__(
        self,
        app: WSGIApp,
        runtime: Runtime,
        route_of: Callable[[WSGIEnviron], str | None] | None = None,
    ) -> None:
        """Wrap ``app``.

        ``route_of(environ)``, asked when the app starts its response, names the matched
        route template (the framework's routing state is still live then).
        """
        self.app = app
        self.runtime = runtime
        self.observer = runtime.observer
        self.endpoints = runtime.endpoints
        self.route_of = route_of
        self.routed = route_of is not None  # the app has a router: unmatched is "unmatched"

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request."""
        started = self.runtime.ensure_started()
        start = time.perf_counter()
        request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ["fender.request_id"] = request_id
        token = bind_request(request_context(request_id, environ.get("HTTP_TRACEPARENT")))
        call = _Call(self, environ, token)
        if call.path in self.endpoints:
            return self._endpoint(call, start_response, start)
        if not started:
            # A startup hook failed (logged): the app may lack what the hook sets up.
            call.status = 503
            retry = str(math.ceil(self.runtime.settings.health_interval))
            response = json_response(
                503,
                {"error": "startup_failed", "request_id": request_id},
                headers=(("Retry-After", retry),),
            )
            _start(start_response, response, request_id)
            return _Recorded([response.body], call, start)
        call.active = self.observer.active(call.method)
        call.active.inc()
        header = ("X-Request-ID", request_id)

        route_of = self.route_of

        def start_observed(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            call.status = int(status[:3])
            if route_of is not None and ROUTE_KEY not in environ:
                route = route_of(environ)
                if route is not None:
                    environ[ROUTE_KEY] = route
            # (No Connection: close while draining: PEP 3333 forbids hop-by-hop headers to
            # WSGI apps and gunicorn drops them; readiness 503 is the drain signal there.)
            headers = [*headers, header]  # a copy: the app may reuse its list
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            try:
                body = self.app(environ, start_observed)
            except Exception:
                _logger.exception("unhandled_exception", method=call.method, path=call.path)
                response = error_response(500, "internal_error", request_id)
                # A second start_response call must carry exc_info (PEP 3333); a first must not,
                # or the server treats the error as its own.
                exc_info = sys.exc_info() if call.status else None
                call.status = 500
                _start(start_response, response, request_id, exc_info)
                body = [response.body]
        except BaseException:
            call.finish(start)
            raise
        return _Recorded(body, call, start, start_response)

    def _endpoint(
        self, call: _Call, start_response: StartResponse, start: float
    ) -> Iterable[bytes]:
        request_id = call.environ["fender.request_id"]
        try:
            response = drive_sync(self.endpoints.handle(_request(call.environ)))
        except Exception:
            _logger.exception("endpoint_failed", path=call.path)
            response = error_response(500, "internal_error", request_id)
        _start(start_response, response, request_id)
        if not self.runtime.settings.access_log_own_endpoints:
            with contextlib.suppress(ValueError):
                reset_request(call.token)
            return [response.body]
        call.status = response.status
        call.environ.setdefault(ROUTE_KEY, call.path)
        return _Recorded([response.body], call, start)


def wrap(app: WSGIApp, *, settings: Settings | None = None, **options: Any) -> FenderWSGI:
    """Wrap any WSGI app in fender: request ids, JSON logs, metrics, fender's endpoints.

    ``options`` are settings fields overriding the environment. WSGI has no lifespan: the
    startup hooks run on the process's first request, the shutdown hooks at interpreter exit.

    Example:
        >>> def app(environ, start_response): ...
        >>> app = wrap(app, env="development")
    """
    from fender.ratelimit.limiter import TieredLimiter
    from fender.web.ratelimit import RateLimitWSGI

    runtime = build_runtime(settings, framework="wsgi", asynchronous=False, **options)
    if isinstance(runtime.limiter, TieredLimiter) and runtime.rate_limit.enabled:
        app = RateLimitWSGI(app, runtime.limiter)
    return FenderWSGI(app, runtime)
