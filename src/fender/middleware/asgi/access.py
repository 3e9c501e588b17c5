"""Pure ASGI: the request path in one layer: request id, fender's endpoints, metrics, access event.

Each concern lives in its own framework-free module (:mod:`~fender.http.requestid` accepts and
binds the id, :mod:`~fender.http.access` records metrics and the access event,
:mod:`~fender.http.endpoints` answers fender's paths); this class drives them around the app with
one header scan and one ``send`` wrapper. One layer rather than three: on this 2-core machine each
wrapper of ``send`` costs 2 to 5 µs per request in situ (bench/RESULTS.md), about 5% of a bare
FastAPI request.

Failures, and what each leaves behind:

* the app raises before its response started: ``500 {"error": "internal_error", "request_id":
  ...}`` with no traceback or exception text; the traceback is logged once, with the request id
  (``unhandled_exception``); the access event has ``"status": 500, "error": "<exception class>"``.
* the app raises after its response started (a stream failing midway): only the server can end
  the response now, so the exception goes on to it; fender has logged it (the server's own
  record of it is dropped, see :func:`~fender.observability._logging.mark_logged`). Metrics and
  the access event keep the status the client received, and the event says
  ``"error": "<exception class>"``.
* the app returns without starting a response: the JSON 500, a ``no_response`` error event, and
  ``"error": "no_response"`` in the access event. Started but never finished (no final body):
  ``"error": "incomplete_response"`` (the server closes the connection).

The WSGI middleware (:mod:`fender.middleware.wsgi.access`) does the same.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from fender._http import PEER_KEY, ROUTE_KEY, forwarding_headers
from fender.http.access import UNMATCHED, path_label
from fender.http.endpoints import Request, Response, drive_async, error_response
from fender.http.headers import asgi_headers, is_https
from fender.http.requestid import HEADER, accept_request_id, request_context
from fender.middleware.asgi.routes import report_unmarked
from fender.observability._logging import REQUEST_CONTEXT, get_logger, mark_logged
from fender.runtime._lifecycle import CLOSING_CONNECTIONS
from fender.security import CSP_NONCE
from fender.security._headers import new_nonce

if TYPE_CHECKING:
    from collections.abc import Callable

    from fender._types import ASGIApp, Message, Receive, Scope, Send
    from fender.http.site import Site
    from fender.security import SecurityHeaders

__all__ = [
    "RESPONSE_HEADERS",
    "FenderMiddleware",
    "route_of_scope",
    "send_response",
]

RESPONSE_HEADERS: Final = "fender.response_headers"
"""Scope key of a list of ``(name, value)`` bytes pairs the response will carry.

Layers inside (the rate limiter: its headers) append to it instead of wrapping ``send``
once more; :class:`FenderMiddleware` adds them as the response starts.
"""

_REQUEST_ID: Final = HEADER.encode()
_TRACEPARENT: Final = b"traceparent"
_USER_AGENT: Final = b"user-agent"
_MOUNT_TAIL: Final = "/{path}"
_CLOSE: Final = (b"connection", b"close")
_logger = get_logger("fender.errors")


def route_of_scope(
    scope: Scope, status: int, root_path: str, *, routed: bool = False
) -> str | None:
    """The route template a request matched.

    First the full template fender's route wrapper recorded
    (:data:`~fender._http.ROUTE_KEY`: mounts and included routers in it). Else the route
    Starlette or FastAPI named in the scope, prefixed with the mount path it was reached
    through (bounded by :func:`~fender.http.access.path_label`: a mount's path parameters are
    in it); a mount
    itself (a mounted app without routes) is that path plus ``/{path}``. Nothing matched:
    ``unmatched`` when the app has a router (``routed``: a 404, a trailing-slash redirect...)
    and for the 404s of an app fender knows no router of; for its other answers None: the raw
    path is all there is (see :meth:`~fender.http.access.Observer.finish`).
    """
    marked = scope.get(ROUTE_KEY)
    if marked is not None:
        return str(marked)
    route = scope.get("route")
    if route is not None:
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(template, str):
            mount_prefix: str = scope.get("root_path", "")[len(root_path) :]
            if not mount_prefix:
                return template
            if hasattr(route, "routes") and template.endswith(_MOUNT_TAIL):
                # The mount that answered: its own path is already the end of the root path.
                return path_label(mount_prefix) + _MOUNT_TAIL
            return path_label(mount_prefix) + template
    if routed or status == 404:  # noqa: PLR2004
        return UNMATCHED
    return None


async def send_response(
    send: Send,
    response: Response,
    extra: tuple[tuple[str, str], ...] = (),
    *,
    security: SecurityHeaders | None = None,
    https: bool = False,
) -> None:
    """Send a framework-free :class:`Response` (plus ``extra`` headers) over ASGI.

    ``security``: the app's security headers, added (for ``https`` or not).
    """
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if security is not None:
        headers = asgi_headers(
            headers, security.default, https=https, nonce=None, cookies=security.cookies
        )
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


class FenderMiddleware:
    """Pure ASGI middleware: fender's request path around ``app`` (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        runtime: Site,
        *,
        routed: bool = False,
        route_of: Callable[[Scope], str | None] | None = None,
    ) -> None:
        """Wrap ``app`` with ``runtime``'s observer, endpoints and lifecycle.

        ``routed``: the app routes with Starlette's router, which names every route it matched
        in the scope; a request it matched none of is ``unmatched`` in the metrics.
        ``route_of(scope)``: for another router fender can ask (Django's), the template of the
        request's route, None for none (``unmatched``). While the lifecycle is draining,
        responses carry ``Connection: close`` so that keep-alive clients move to another
        instance.

        Every response gets the runtime's security headers (:mod:`fender.http.headers`): the
        app's, fender's own endpoints' and fender's JSON 500s; a route's own are looked up
        by ``scope["endpoint"]`` (Starlette's routing sets it) when its response starts.
        """
        self.app = app
        self.routed = routed
        self.route_of = route_of
        self.runtime = runtime
        self.observer = runtime.observer
        self.endpoints = runtime.endpoints
        self.own_paths = runtime.endpoints.table
        self.lifecycle = runtime.lifecycle
        self.observe_endpoints = runtime.settings.access_log_own_endpoints
        self.reads_proxy_headers = runtime.observer.reads_proxy_headers

    async def __call__(  # noqa: C901, PLR0912, PLR0915  (one frame per request: see the module)
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Serve one connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = traceparent = agent = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                incoming = value
            elif name == _TRACEPARENT:
                traceparent = value
            elif name == _USER_AGENT:
                agent = value
        request_id = accept_request_id(incoming)
        # request.state.request_id in Starlette and FastAPI
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = REQUEST_CONTEXT.set(request_context(request_id, traceparent))
        if scope["path"] in self.own_paths:
            try:
                await self._endpoint(scope, send, request_id, start)
            finally:
                REQUEST_CONTEXT.reset(token)
            return
        security = self.security
        nonce = nonce_token = None
        if security is not None and security.uses_nonce:
            nonce = state["csp_nonce"] = new_nonce()  # request.state.csp_nonce
            nonce_token = CSP_NONCE.set(nonce)
        header = (_REQUEST_ID, request_id.encode())
        extra: list[tuple[bytes, bytes]] = []
        scope[RESPONSE_HEADERS] = extra
        lifecycle = self.lifecycle
        closing = CLOSING_CONNECTIONS
        outcome: list[Any] = [0, 0, False]  # status, response bytes, response complete

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.body":
                outcome[1] += len(message.get("body", b""))
                outcome[2] = not message.get("more_body", False)
            elif message["type"] == "http.response.start":
                outcome[0] = message["status"]
                if security is None:
                    # A new list: the app may send the same list object on every response.
                    headers = [*message.get("headers", ()), header, *extra]
                else:
                    headers = asgi_headers(
                        message.get("headers", ()),
                        security.for_endpoint(scope.get("endpoint")),
                        https=is_https(scope.get("scheme")),
                        nonce=nonce,
                        cookies=security.cookies,
                    )
                    headers.append(header)
                    headers.extend(extra)
                if lifecycle.draining or closing.is_set():
                    headers.append(_CLOSE)
                message["headers"] = headers
            await send(message)

        observer = self.observer
        root_path = scope.get("root_path", "")
        active = observer.active(scope["method"])
        active.inc()
        error: str | None = None
        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            _logger.exception("unhandled_exception", method=scope["method"], path=scope.get("path"))
            mark_logged(exc)
            error = type(exc).__name__
            if outcome[2]:
                # A handler inside (Starlette's ServerErrorMiddleware) answered and re-raised so
                # that someone logs it: logged now, once; nothing more to send.
                return
            if outcome[0]:
                raise  # headers are out, the body is not: only the server can end it now
            await send_response(send_observed, error_response(500, "internal_error", request_id))
        else:
            if not outcome[2]:
                error = self._unfinished(scope, outcome[0])
                if error == "no_response":
                    await send_response(
                        send_observed, error_response(500, "internal_error", request_id)
                    )
        finally:
            active.dec()
            status = outcome[0] or 500
            route: str | None
            if self.route_of is not None:
                route = self.route_of(scope) or UNMATCHED
            else:
                route = route_of_scope(scope, status, root_path, routed=self.routed)
                if self.routed and ROUTE_KEY not in scope:
                    report_unmarked(scope, status)  # a route without fender's wrapper answered?
            observer.finish(
                request_id,
                scope["method"],
                scope["path"] if route is None else route,
                status,
                time.perf_counter() - start,
                outcome[1],
                self._client(scope) if self.reads_proxy_headers else _peer(scope),
                agent.decode("latin-1") if agent else None,
                error,
                raw_path=route is None,
            )
            REQUEST_CONTEXT.reset(token)
            if nonce_token is not None:
                CSP_NONCE.reset(nonce_token)

    @property
    def security(self) -> SecurityHeaders | None:
        """The runtime's security headers, None when off (read per request: replaceable)."""
        headers = self.runtime.headers
        return headers if headers.enabled else None

    @staticmethod
    def _unfinished(scope: Scope, status: int) -> str:
        """What the app left undone when it returned without finishing its response."""
        if status:
            # The server closes the connection (and says so in its log).
            return "incomplete_response"
        # Servers answer a text/plain 500 without the request id: fender's JSON 500 instead.
        _logger.error("no_response", method=scope["method"], path=scope.get("path"))
        return "no_response"

    async def _endpoint(self, scope: Scope, send: Send, request_id: str, start: float) -> None:
        """Answer one of fender's own paths (``/metrics``, the health family...).

        Their I/O (health checks, a slow ``/metrics`` rendering, see
        :mod:`fender.http.metrics`) runs as the effects they yield, off the event loop where
        it would stall it.
        """
        try:
            response = await drive_async(self.endpoints.handle(_request(scope)))
        except Exception:
            _logger.exception("endpoint_failed", path=scope["path"])
            response = error_response(500, "internal_error", request_id)
        await send_response(
            send,
            response,
            ((HEADER, request_id),),
            security=self.security,
            https=is_https(scope.get("scheme")),
        )
        if self.observe_endpoints:
            self.observer.finish(
                request_id,
                scope["method"],
                scope["path"],
                response.status,
                time.perf_counter() - start,
                len(response.body),
                self._client(scope),
                None,
            )

    def _client(self, scope: Scope) -> str | None:
        address = _peer(scope)
        if not self.reads_proxy_headers or PEER_KEY in scope:  # resolved by the edge already
            return address
        return self.observer.client(address, forwarding_headers(scope["headers"]))


def _peer(scope: Scope) -> str | None:
    peer = scope.get("client")
    return peer[0] if peer else None


def _request(scope: Scope) -> Request:
    client = scope.get("client")
    return Request(
        method=scope["method"],
        path=scope["path"],
        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
        client=client[0] if client else None,
        query=scope.get("query_string", b"").decode("latin-1"),
    )
