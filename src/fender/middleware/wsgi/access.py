"""WSGI: the same request path as ASGI, in one wrapper.

Order is the ASGI one: request id -> fender's endpoints -> access (metrics, access event,
JSON 500) -> the app. The request's log context is bound while the app runs: its call and
each step of its body. The request is recorded when its body ends: exhausted, closed
(``close()``) or abandoned, whichever comes first (test clients do not all call ``close()``).

Failures are handled as in ASGI (:mod:`fender.middleware.asgi.access`). The app's
``start_response`` is held back until its body's first non-empty chunk (or its end, or a
``write()`` call), as PEP 3333 allows, so that until then fender can still answer instead: an
app raising, returning None, or a body failing before its first chunk (a generator, Flask's
``stream_with_context``) gets fender's JSON 500 through the server's ``start_response``,
called once, so none of the failed response's headers leak into it; an app that never calls
``start_response`` gets it too (``no_response`` logged). A failure after the first chunk goes
on to the server, which cuts the connection; the access event keeps the status sent and names
the error.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from fender._http import PEER_KEY, ROUTE_KEY, environ_forwarding, environ_headers, status_line
from fender._types import StartResponse, WSGIApp, WSGIEnviron
from fender.http.access import UNMATCHED
from fender.http.endpoints import Request, Response, drive_sync, error_response, json_response
from fender.http.headers import ENDPOINT_KEY, NONCE_KEY, is_https, wsgi_headers
from fender.http.requestid import accept_request_id, request_context
from fender.http.site import Site
from fender.observability._logging import REQUEST_CONTEXT, RequestContext, get_logger, mark_logged
from fender.security import CSP_NONCE, SecurityHeaders
from fender.security._headers import new_nonce

__all__ = ["RESPONSE_HEADERS", "FenderWSGI", "route_of_environ"]

RESPONSE_HEADERS: Final = "fender.response_headers"
"""Environ key of a list of ``(name, value)`` pairs every response to the request carries.

Layers inside (the edge: its CORS headers) append to it instead of wrapping
``start_response`` once more; :class:`FenderWSGI` adds them to the app's response and to its
own JSON 500.
"""

_logger = get_logger("fender.errors")
# The end of a body, from next(body, _END): a bytes object of fender's own, which no app
# yields (``is``, not ``==``), so no StopIteration is raised and caught per request.
_END: Final = bytes(bytearray(b"end of body"))


def route_of_environ(environ: WSGIEnviron, status: int, *, routed: bool = False) -> str | None:
    """The route template an adapter recorded, else ``unmatched``, or None: the raw path.

    ``unmatched`` for a 404, and for anything when the app has a router (``routed``: Flask's
    405s and redirects); None for a bare app's other answers: the raw path (``SCRIPT_NAME`` +
    ``PATH_INFO``) is all there is (see :meth:`~fender.http.access.Observer.finish`).
    """
    route = environ.get(ROUTE_KEY)
    if route is not None:
        return str(route)
    if routed or status == 404:  # noqa: PLR2004
        return UNMATCHED
    return None


def _request(environ: WSGIEnviron) -> Request:
    return Request(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        path=str(environ.get("PATH_INFO", "")),
        headers=environ_headers(environ),
        client=environ.get("REMOTE_ADDR"),
        query=str(environ.get("QUERY_STRING", "")),
    )


def _start(
    start_response: StartResponse,
    response: Response,
    request_id: str,
    exc: Any = None,
    extra: list[tuple[str, str]] | None = None,
    *,
    environ: WSGIEnviron,
    security: SecurityHeaders | None,
) -> None:
    headers = list(response.headers)
    if extra:
        headers.extend(extra)
    if security is not None:
        headers = wsgi_headers(
            headers,
            security.default,
            https=is_https(environ.get("wsgi.url_scheme")),
            nonce=None,
            cookies=security.cookies,
        )
    headers.append(("X-Request-ID", request_id))
    if exc is None:
        start_response(status_line(response.status), headers)
    else:
        start_response(status_line(response.status), headers, exc)


class _Recorded:
    """The app's response body: starts the server's response, records the request at its end.

    The app's status and headers are held back until its first non-empty chunk or the end of
    its body (PEP 3333 lets middleware delay them so): a body that fails before then still
    becomes fender's JSON 500, and an app that never called ``start_response`` too.

    The request ends at the first of: its last chunk handed over (the declared
    ``Content-Length`` reached and the body at its end, or a JSON 500 of fender's), the body
    exhausted, ``close()``, or the iteration abandoned (the iterator closed or collected).
    Servers call ``close()`` (PEP 3333); test clients may not (Flask's), nor read past the
    first chunk, and the request must be recorded all the same.
    """

    __slots__ = ("_body", "_call", "_done", "_start")

    def __init__(self, body: Iterable[bytes], call: _Call, start: float) -> None:
        self._body = body
        self._call = call
        self._start = start
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        call = self._call
        var = REQUEST_CONTEXT
        context = call.context
        try:
            # (None, the result of an app that forgot to return, fails here: the JSON 500)
            chunks = iter(self._body)
            chunk = b""
            if not call.sent:
                chunk = self._first(chunks)
                if call.headers is None:
                    # Body and no status: the server would drop the connection, 0 bytes.
                    call.log_error("no_response")
                    call.error = "no_response"
                    yield self._last(call.fail())
                    return
                call.send_headers()
            while True:
                if chunk:
                    call.bytes += len(chunk)
                    if call.bytes == call.length:
                        rest = self._complete(chunks)
                        if rest is None:
                            yield chunk
                            return
                        chunks = rest
                    yield chunk
                token = var.set(context)
                try:
                    chunk = next(chunks, _END)
                    if chunk is _END:
                        self._end()  # in the request's context already
                        return
                finally:
                    var.reset(token)
        except Exception as exc:
            call.log_failure(exc)
            if call.sent:
                raise  # headers are out: only the server can end the response (it cuts it)
            yield self._last(call.fail(sys.exc_info() if call.attempted else None))
        finally:
            # Failed or abandoned (the iterator closed or collected): the request is over too.
            self.close()

    def _first(self, chunks: Iterator[bytes]) -> bytes:
        """The body's first non-empty chunk, or ``b""`` when it has none."""
        token = REQUEST_CONTEXT.set(self._call.context)
        try:
            for chunk in chunks:
                if chunk:
                    return chunk
            return b""
        finally:
            REQUEST_CONTEXT.reset(token)

    def _complete(self, chunks: Iterator[bytes]) -> Iterator[bytes] | None:
        """The declared length is reached: end the request now if the body ends there too.

        None once ended; else the rest of a body longer than it said (the server cuts it),
        recorded at its end. The app's body runs to its end before the server writes the last
        chunk, as it would right after: no step of it is skipped.
        """
        token = REQUEST_CONTEXT.set(self._call.context)
        try:
            try:
                extra = next(chunks, _END)
            except Exception as exc:
                # Every byte declared is out: the response goes out whole, the error is
                # logged and named in the access event.
                self._call.log_failure(exc)
            else:
                if extra is not _END:
                    return itertools.chain((extra,), chunks)
            self._end()
        finally:
            REQUEST_CONTEXT.reset(token)
        return None

    def _last(self, body: bytes) -> bytes:
        """``body``, fender's whole response: the request is over once it is handed over."""
        self._call.bytes += len(body)
        self.close()
        return body

    def close(self) -> None:
        """The server's ``close()`` (PEP 3333): ends the request unless its body did."""
        if self._done:
            return
        token = REQUEST_CONTEXT.set(self._call.context)
        try:
            self._end()
        finally:
            REQUEST_CONTEXT.reset(token)

    def _end(self) -> None:
        """Close the app's body and record the request, once (the request's context bound)."""
        if self._done:
            return
        self._done = True
        call = self._call
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        except Exception as exc:
            # The response is complete (or abandoned): a failing cleanup is logged and named
            # in the access event, not raised to the server, which would cut a finished
            # response short (no last chunk of a chunked body).
            call.log_failure(exc)
        finally:
            call.finish(self._start)


class _Call:
    """State of one request through :class:`FenderWSGI`.

    ``start_response`` is what the app gets: it records the status and headers, which
    :meth:`send_headers` hands to the server's ``start_response`` (``reply``) later.

    The request's log context is bound only while fender or the app runs for the request (the
    app call, each step of its body, the end), never across a ``yield`` to the server: a body
    left unread and unclosed cannot leave its id on the thread's later log lines.
    """

    __slots__ = (
        "active",
        "attempted",
        "bytes",
        "context",
        "environ",
        "error",
        "headers",
        "length",
        "line",
        "method",
        "path",
        "reply",
        "request_id",
        "sent",
        "server_write",
        "status",
        "wsgi",
    )

    def __init__(
        self,
        wsgi: FenderWSGI,
        environ: WSGIEnviron,
        context: RequestContext,
        reply: StartResponse,
    ) -> None:
        self.wsgi = wsgi
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET"))
        self.path = environ.get("PATH_INFO", "")
        self.context = context
        self.request_id = context.request_id
        self.reply = reply
        self.status = 0
        self.bytes = 0
        self.active: Any = None
        self.error: str | None = None
        self.line = ""
        self.headers: list[tuple[str, str]] | None = None  # None: the app has not started
        self.length: int | None = None  # the Content-Length the response declares
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
        for name, value in headers:
            if len(name) == 14 and name.lower() == "content-length":  # noqa: PLR2004
                self.length = int(value) if value.isdigit() else None
        # (No Connection: close while draining: PEP 3333 forbids hop-by-hop headers to
        # WSGI apps and gunicorn drops them; readiness 503 is the drain signal there.)
        security = self.wsgi.security
        extra = environ.get(RESPONSE_HEADERS)
        if extra:
            headers = [*headers, *extra]
        if security is None:
            self.headers = [*headers, ("X-Request-ID", self.request_id)]  # a copy: apps reuse lists
        else:
            self.headers = wsgi_headers(
                headers,
                security.for_endpoint(environ.get(ENDPOINT_KEY)),
                https=is_https(environ.get("wsgi.url_scheme")),
                nonce=environ.get(NONCE_KEY),
                cookies=security.cookies,
            )
            self.headers.append(("X-Request-ID", self.request_id))
        return self.write

    def log_failure(self, exc: Exception) -> None:
        """Log the app's exception (once, with the request id) and name it in the access event."""
        self.log_error("unhandled_exception", exc)
        mark_logged(exc)
        self.error = type(exc).__name__

    def log_error(self, event: str, exc: Exception | None = None) -> None:
        """Log ``event`` as an error of this request (with ``exc``'s traceback when given)."""
        token = REQUEST_CONTEXT.set(self.context)
        try:
            _logger.error(event, method=self.method, path=self.path, exc_info=exc)
        finally:
            REQUEST_CONTEXT.reset(token)

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
        _start(
            self.reply,
            response,
            self.request_id,
            exc_info,
            self.environ.get(RESPONSE_HEADERS),
            environ=self.environ,
            security=self.wsgi.security,
        )
        self.sent = True
        return response.body

    def finish(self, start: float) -> None:
        """Record the request: in-flight gauge, metrics, access event (context bound by caller)."""
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
                # resolved by the edge already (PEER_KEY): REMOTE_ADDR is the client
                None if PEER_KEY in environ else environ_forwarding(environ),
            ),
            environ.get("HTTP_USER_AGENT"),
            self.error,
            raw_path=route is None,
        )


def _raw_path(environ: WSGIEnviron) -> str:
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


class FenderWSGI:
    """WSGI middleware: request ids, fender's endpoints, metrics, access events, JSON 500s."""

    def __init__(
        self,
        app: WSGIApp,
        runtime: Site,
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

    @property
    def security(self) -> SecurityHeaders | None:
        """The runtime's security headers, None when off (read per request: replaceable)."""
        headers = self.runtime.headers
        return headers if headers.enabled else None

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request.

        Every response gets the security headers (the app's, fender's endpoints', its 500s);
        a route's own are found through ``environ[ENDPOINT_KEY]``, the view an adapter names.
        """
        started = self.runtime.ensure_started()
        start = time.perf_counter()
        request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ["fender.request_id"] = request_id
        environ[RESPONSE_HEADERS] = []
        context = request_context(request_id, environ.get("HTTP_TRACEPARENT"))
        call = _Call(self, environ, context, start_response)
        token = REQUEST_CONTEXT.set(context)
        nonce_token = None
        try:
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
                _start(
                    start_response,
                    response,
                    request_id,
                    environ=environ,
                    security=self.security,
                )
                call.sent = True
                call.length = len(response.body)
                return _Recorded([response.body], call, start)
            call.active = self.observer.active(call.method)
            call.active.inc()
            security = self.security
            if security is not None and security.uses_nonce:
                nonce = environ[NONCE_KEY] = new_nonce()
                nonce_token = CSP_NONCE.set(nonce)
            try:
                try:
                    body = self.app(environ, call.start_response)
                except Exception as exc:
                    call.log_failure(exc)
                    if call.sent:
                        raise  # it wrote through write(): only the server can end the response
                    body = [call.fail(sys.exc_info() if call.attempted else None)]
            except BaseException:
                call.finish(start)
                raise
            return _Recorded(body, call, start)
        finally:
            REQUEST_CONTEXT.reset(token)
            if nonce_token is not None:
                CSP_NONCE.reset(nonce_token)

    def _endpoint(
        self, call: _Call, start_response: StartResponse, start: float
    ) -> Iterable[bytes]:
        request_id = call.request_id
        try:
            response = drive_sync(self.endpoints.handle(_request(call.environ)))
        except Exception:
            _logger.exception("endpoint_failed", path=call.path)
            response = error_response(500, "internal_error", request_id)
        _start(start_response, response, request_id, environ=call.environ, security=self.security)
        call.sent = True
        if not self.runtime.settings.access_log_own_endpoints:
            return [response.body]
        call.status = response.status
        call.length = len(response.body)
        call.environ.setdefault(ROUTE_KEY, call.path)
        return _Recorded([response.body], call, start)
