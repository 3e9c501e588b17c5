"""WSGI integration: the same request path as ASGI, in one wrapper, and ``wrap()``.

Order is the ASGI one: request id -> fender's endpoints -> access (metrics, access event,
JSON 500) -> the app. The request's log context stays bound while the server iterates the
response body and is released when it calls ``close()``, where the request is recorded.

Failures are handled as in ASGI (:mod:`fender.web.access`). The app's ``start_response`` is
held back until its body's first non-empty chunk (or its end, or a ``write()`` call), as PEP
3333 allows, so that until then fender can still answer instead: an app raising, returning
None, or a body failing before its first chunk (a generator, Flask's ``stream_with_context``)
gets fender's JSON 500 through the server's ``start_response``, called once, so none of the
failed response's headers leak into it; an app that never calls ``start_response`` gets it too
(``no_response`` logged). A failure after the first chunk goes on to the server, which cuts
the connection; the access event keeps the status sent and names the error.
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
from fender.observability.logging import bind_request, get_logger, mark_logged, reset_request
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


def route_of_environ(environ: WSGIEnviron, status: int, *, routed: bool = False) -> str | None:
    """The route template an adapter recorded, else ``unmatched``, or None: the raw path.

    ``unmatched`` for a 404, and for anything when the app has a router (``routed``: Flask's
    405s and redirects); None for a bare app's other answers: the raw path (``SCRIPT_NAME`` +
    ``PATH_INFO``) is all there is (see :meth:`~fender.web.observe.Observer.finish`).
    """
    route = environ.get(ROUTE_KEY)
    if route is not None:
        return str(route)
    if routed or status == 404:  # noqa: PLR2004
        return UNMATCHED
    return None


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
    """The app's response body: starts the server's response, records the request at ``close``.

    The app's status and headers are held back until its first non-empty chunk or the end of
    its body (PEP 3333 lets middleware delay them so): a body that fails before then still
    becomes fender's JSON 500, and an app that never called ``start_response`` too.
    """

    __slots__ = ("_body", "_call", "_done", "_start")

    def __init__(self, body: Iterable[bytes], call: _Call, start: float) -> None:
        self._body = body
        self._call = call
        self._start = start
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        call = self._call
        try:
            # (None, the result of an app that forgot to return, fails here: the JSON 500)
            chunks = iter(self._body)
            if not call.sent:
                first = b""
                for first in chunks:
                    if first:
                        break
                if call.headers is None:
                    # Body and no status: the server would drop the connection, 0 bytes.
                    _logger.error("no_response", method=call.method, path=call.path)
                    call.error = "no_response"
                    body = call.fail()
                    call.bytes += len(body)
                    yield body
                    return
                call.send_headers()
                if first:
                    call.bytes += len(first)
                    yield first
            for chunk in chunks:
                call.bytes += len(chunk)
                yield chunk
        except Exception as exc:
            _logger.exception("unhandled_exception", method=call.method, path=call.path)
            mark_logged(exc)
            call.error = type(exc).__name__
            if call.sent:
                raise  # headers are out: only the server can end the response (it cuts it)
            body = call.fail(sys.exc_info() if call.attempted else None)
            call.bytes += len(body)
            yield body

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
    """State of one request through :class:`FenderWSGI`.

    ``start_response`` is what the app gets: it records the status and headers, which
    :meth:`send_headers` hands to the server's ``start_response`` (``reply``) later.
    """

    __slots__ = (
        "active",
        "attempted",
        "bytes",
        "environ",
        "error",
        "headers",
        "line",
        "method",
        "path",
        "reply",
        "request_id",
        "sent",
        "server_write",
        "status",
        "token",
        "wsgi",
    )

    def __init__(
        self,
        wsgi: FenderWSGI,
        environ: WSGIEnviron,
        token: Any,
        request_id: str,
        reply: StartResponse,
    ) -> None:
        self.wsgi = wsgi
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET"))
        self.path = environ.get("PATH_INFO", "")
        self.token = token
        self.request_id = request_id
        self.reply = reply
        self.status = 0
        self.bytes = 0
        self.active: Any = None
        self.error: str | None = None
        self.line = ""
        self.headers: list[tuple[str, str]] | None = None  # None: the app has not started
        self.attempted = False  # the server's start_response was called
        self.sent = False  # ... and accepted the headers
        self.server_write: Callable[[bytes], object] | None = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        """The app's ``start_response`` (PEP 3333): held back until the body starts."""
        if exc_info is not None:
            try:
                if self.sent:
                    # Too late to replace the response: the app's error goes on (PEP 3333).
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.headers is not None:
            msg = "start_response called a second time without exc_info (PEP 3333)"
            raise AssertionError(msg)
        self.status = int(status[:3])
        route_of = self.wsgi.route_of
        environ = self.environ
        if route_of is not None and ROUTE_KEY not in environ:
            route = route_of(environ)
            if route is not None:
                environ[ROUTE_KEY] = route
        self.line = status
        # (No Connection: close while draining: PEP 3333 forbids hop-by-hop headers to
        # WSGI apps and gunicorn drops them; readiness 503 is the drain signal there.)
        self.headers = [*headers, ("X-Request-ID", self.request_id)]  # a copy: apps reuse lists
        return self.write

    def send_headers(self) -> None:
        """Start the server's response with the app's status and headers."""
        self.attempted = True
        self.server_write = self.reply(self.line, self.headers)
        self.sent = True

    def write(self, data: bytes) -> None:
        """The ``write`` callable ``start_response`` returns: sends the headers first."""
        if not self.sent:
            self.send_headers()
        self.bytes += len(data)
        self.server_write(data)  # type: ignore[misc]  # set by send_headers

    def fail(self, exc_info: Any = None) -> bytes:
        """Start fender's JSON 500 instead of the app's response; the body to send.

        ``exc_info``: the server's ``start_response`` was already called (and failed: an
        invalid header), so the call replacing it must carry the error (PEP 3333).
        """
        response = error_response(500, "internal_error", self.request_id)
        self.status = 500
        self.attempted = True
        _start(self.reply, response, self.request_id, exc_info)
        self.sent = True
        return response.body

    def finish(self, start: float) -> None:
        try:
            if self.active is not None:
                self.active.dec()
            environ = self.environ
            status = self.status or 500
            wsgi = self.wsgi
            observer = wsgi.observer
            route = route_of_environ(environ, status, routed=wsgi.routed)
            observer.finish(
                self.request_id,
                self.method,
                _raw_path(environ) if route is None else route,
                status,
                time.perf_counter() - start,
                self.bytes,
                observer.client(
                    environ.get("REMOTE_ADDR"),
                    environ.get("HTTP_X_FORWARDED_FOR"),
                    environ.get("HTTP_FORWARDED"),
                ),
                environ.get("HTTP_USER_AGENT"),
                self.error,
                raw_path=route is None,
            )
        finally:
            # (not contextlib.suppress: it costs 1 µs per request here)
            try:  # noqa: SIM105
                reset_request(self.token)
            except ValueError:  # closed from another context than bound
                pass


def _raw_path(environ: WSGIEnviron) -> str:
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


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
        call = _Call(self, environ, token, request_id, start_response)
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
            call.sent = True
            return _Recorded([response.body], call, start)
        call.active = self.observer.active(call.method)
        call.active.inc()
        try:
            try:
                body = self.app(environ, call.start_response)
            except Exception as exc:
                _logger.exception("unhandled_exception", method=call.method, path=call.path)
                mark_logged(exc)
                call.error = type(exc).__name__
                if call.sent:
                    raise  # it wrote through write(): only the server can end the response
                body = [call.fail(sys.exc_info() if call.attempted else None)]
        except BaseException:
            call.finish(start)
            raise
        return _Recorded(body, call, start)

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
        call.sent = True
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
