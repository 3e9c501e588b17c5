"""Pure ASGI: time the request, record metrics and the access event, turn crashes into JSON 500.

Sits inside :class:`~fender.web.requestid.RequestIdMiddleware`, so the access event and the
error log carry the request id. A crash before the response started becomes
``500 {"error": "internal_error", "request_id": ...}`` with no traceback or exception text;
the traceback is logged once, with the request id.
"""

from __future__ import annotations

import time
from typing import Any, Final

from fender._types import ASGIApp, Message, Receive, Scope, Send
from fender.observability.logging import current_request, get_logger
from fender.runtime.lifecycle import Lifecycle
from fender.web.endpoints import error_response
from fender.web.observe import UNMATCHED, Observer

__all__ = ["AccessMiddleware", "route_of_scope"]

_USER_AGENT: Final = b"user-agent"
_CLOSE: Final = (b"connection", b"close")
_logger = get_logger("fender.errors")


def route_of_scope(scope: Scope, status: int, root_path: str) -> str:
    """The route template a request matched (Starlette and FastAPI put it in the scope).

    Mounted apps prefix their templates with the mount path; without a router, ``unmatched``
    for a 404 and the raw path otherwise (bounded by the metrics' cardinality guard).
    """
    route = scope.get("route")
    if route is not None:
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(template, str):
            mount_prefix: str = scope.get("root_path", "")[len(root_path) :]
            return mount_prefix + template
    if status == 404:  # noqa: PLR2004
        return UNMATCHED
    path = scope.get("path", "")
    return path if isinstance(path, str) else UNMATCHED


class AccessMiddleware:
    """Pure ASGI middleware recording every HTTP request through an :class:`Observer`."""

    def __init__(
        self, app: ASGIApp, observer: Observer, lifecycle: Lifecycle | None = None
    ) -> None:
        """Wrap ``app``.

        Args:
            app: the ASGI app.
            observer: records each request.
            lifecycle: while it is draining, responses carry ``Connection: close`` so that
                keep-alive clients move to another instance.
        """
        self.app = app
        self.observer = observer
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        root_path = scope.get("root_path", "")
        active = self.observer.active(scope["method"])
        active.inc()
        state: list[Any] = [0, 0, False]  # status, response bytes, response complete
        lifecycle = self.lifecycle

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.body":
                state[1] += len(message.get("body", b""))
                state[2] = not message.get("more_body", False)
            elif message["type"] == "http.response.start":
                state[0] = message["status"]
                if lifecycle is not None and lifecycle.draining:
                    message["headers"] = [*message.get("headers", ()), _CLOSE]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception:
            _logger.exception("unhandled_exception", method=scope["method"], path=scope.get("path"))
            if state[2]:
                # A handler inside (Starlette's ServerErrorMiddleware) answered and re-raised so
                # that someone logs it: logged now, once; nothing more to send.
                return
            if state[0]:
                raise  # headers are out, the body is not: only the server can end it now
            await _send_internal_error(send_observed)
        finally:
            active.dec()
            status = state[0] or 500
            self.observer.finish(
                method=scope["method"],
                route=route_of_scope(scope, status, root_path),
                status=status,
                duration=time.perf_counter() - start,
                response_bytes=state[1],
                client=self._client(scope),
                user_agent=_user_agent(scope),
            )

    def _client(self, scope: Scope) -> str | None:
        peer = scope.get("client")
        address = peer[0] if peer else None
        if not self.observer.reads_proxy_headers:
            return address
        forwarded_for = forwarded = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1")
            elif name == b"forwarded":
                forwarded = value.decode("latin-1")
        return self.observer.client(address, forwarded_for, forwarded)


async def _send_internal_error(send: Send) -> None:
    """``500 {"error": "internal_error", "request_id": ...}``, nothing about the cause."""
    context = current_request()
    response = error_response(500, "internal_error", context.request_id if context else None)
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k.encode(), v.encode()) for k, v in response.headers],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def _user_agent(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _USER_AGENT:
            return str(value.decode("latin-1"))
    return None
