"""Pure ASGI: the request path in one layer: request id, fender's endpoints, metrics, access event.

Each concern lives in its own framework-free module (:mod:`~fender.web.requestid` accepts and
binds the id, :mod:`~fender.web.observe` records metrics and the access event,
:mod:`~fender.web.endpoints` answers fender's paths); this class drives them around the app with
one header scan and one ``send`` wrapper. One layer rather than three: on this 2-core machine each
wrapper of ``send`` costs 2 to 5 µs per request in situ (bench/RESULTS.md), about 5% of a bare
FastAPI request.

A crash before the response started becomes ``500 {"error": "internal_error", "request_id": ...}``
with no traceback or exception text; the traceback is logged once, with the request id.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from fender.observability.logging import REQUEST_CONTEXT, get_logger
from fender.web.endpoints import Request, Response, drive_async, error_response
from fender.web.observe import UNMATCHED
from fender.web.requestid import HEADER, accept_request_id, request_context

if TYPE_CHECKING:
    from fender._types import ASGIApp, Message, Receive, Scope, Send
    from fender.web.runtime import Runtime

__all__ = ["RESPONSE_HEADERS", "FenderMiddleware", "route_of_scope", "send_response"]

RESPONSE_HEADERS: Final = "fender.response_headers"
"""Scope key of a list of ``(name, value)`` bytes pairs the response will carry.

Layers inside (the rate limiter: its headers) append to it instead of wrapping ``send``
once more; :class:`FenderMiddleware` adds them as the response starts.
"""

_REQUEST_ID: Final = HEADER.encode()
_TRACEPARENT: Final = b"traceparent"
_USER_AGENT: Final = b"user-agent"
_CLOSE: Final = (b"connection", b"close")
_logger = get_logger("fender.errors")


def route_of_scope(scope: Scope, status: int, root_path: str, *, routed: bool = False) -> str:
    """The route template a request matched (Starlette and FastAPI put it in the scope).

    Mounted apps prefix their templates with the mount path. Nothing matched: ``unmatched``
    when the app has a router (``routed``: a 404, a trailing-slash redirect...), else the raw
    path for a 200 of an app fender knows no router of (bounded by the cardinality guard),
    ``unmatched`` for its 404s.
    """
    route = scope.get("route")
    if route is not None:
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(template, str):
            mount_prefix: str = scope.get("root_path", "")[len(root_path) :]
            return mount_prefix + template
    if routed or status == 404:  # noqa: PLR2004
        return UNMATCHED
    path = scope.get("path", "")
    return path if isinstance(path, str) else UNMATCHED


async def send_response(
    send: Send, response: Response, extra: tuple[tuple[str, str], ...] = ()
) -> None:
    """Send a framework-free :class:`Response` (plus ``extra`` headers) over ASGI."""
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in (*response.headers, *extra)
            ],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class FenderMiddleware:
    """Pure ASGI middleware: fender's request path around ``app`` (see the module)."""

    def __init__(self, app: ASGIApp, runtime: Runtime, *, routed: bool = False) -> None:
        """Wrap ``app`` with ``runtime``'s observer, endpoints and lifecycle.

        ``routed``: the app routes with Starlette's router, which names every route it matched
        in the scope; a request it matched none of is ``unmatched`` in the metrics. While the
        lifecycle is draining, responses carry ``Connection: close`` so that keep-alive
        clients move to another instance.
        """
        self.app = app
        self.routed = routed
        self.runtime = runtime
        self.observer = runtime.observer
        self.endpoints = runtime.endpoints
        self.own_paths = runtime.endpoints.table
        self.lifecycle = runtime.lifecycle
        self.observe_endpoints = runtime.settings.access_log_own_endpoints
        self.reads_proxy_headers = runtime.observer.reads_proxy_headers

    async def __call__(  # noqa: C901, PLR0915  (one frame per request: see the module)
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
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_CONTEXT.set(request_context(request_id, traceparent))
        if scope["path"] in self.own_paths:
            try:
                await self._endpoint(scope, send, request_id, start)
            finally:
                REQUEST_CONTEXT.reset(token)
            return
        header = (_REQUEST_ID, request_id.encode())
        extra: list[tuple[bytes, bytes]] = []
        scope[RESPONSE_HEADERS] = extra
        lifecycle = self.lifecycle
        outcome: list[Any] = [0, 0, False]  # status, response bytes, response complete

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.body":
                outcome[1] += len(message.get("body", b""))
                outcome[2] = not message.get("more_body", False)
            elif message["type"] == "http.response.start":
                outcome[0] = message["status"]
                # A new list: the app may send the same list object on every response.
                headers = [*message.get("headers", ()), header, *extra]
                if lifecycle.draining:
                    headers.append(_CLOSE)
                message["headers"] = headers
            await send(message)

        observer = self.observer
        root_path = scope.get("root_path", "")
        active = observer.active(scope["method"])
        active.inc()
        try:
            await self.app(scope, receive, send_observed)
        except Exception:
            _logger.exception("unhandled_exception", method=scope["method"], path=scope.get("path"))
            if outcome[2]:
                # A handler inside (Starlette's ServerErrorMiddleware) answered and re-raised so
                # that someone logs it: logged now, once; nothing more to send.
                return
            if outcome[0]:
                raise  # headers are out, the body is not: only the server can end it now
            await send_response(send_observed, error_response(500, "internal_error", request_id))
        finally:
            active.dec()
            status = outcome[0] or 500
            observer.finish(
                request_id,
                scope["method"],
                route_of_scope(scope, status, root_path, routed=self.routed),
                status,
                time.perf_counter() - start,
                outcome[1],
                self._client(scope) if self.reads_proxy_headers else _peer(scope),
                agent.decode("latin-1") if agent else None,
            )
            REQUEST_CONTEXT.reset(token)

    async def _endpoint(self, scope: Scope, send: Send, request_id: str, start: float) -> None:
        """Answer one of fender's own paths (``/metrics``, the health family...)."""
        try:
            response = await drive_async(self.endpoints.handle(_request(scope)))
        except Exception:
            _logger.exception("endpoint_failed", path=scope["path"])
            response = error_response(500, "internal_error", request_id)
        await send_response(send, response, ((HEADER, request_id),))
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
        if not self.reads_proxy_headers:
            return address
        forwarded_for = forwarded = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1")
            elif name == b"forwarded":
                forwarded = value.decode("latin-1")
        return self.observer.client(address, forwarded_for, forwarded)


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
