"""Pure ASGI: the edge of the request path (head bounds, proxies, hosts, HTTPS, CORS, probes).

The decisions are :class:`fender.http.edge.Edge`'s; this shell reads the scope in one pass
over the headers, writes the resolved client, scheme and host into the scope in place (the
socket peer stays at :data:`~fender._http.PEER_KEY`), sends the edge's own answers, and hands
its response headers (CORS) to the access layer through
:data:`~fender.middleware.asgi.access.RESPONSE_HEADERS`, or wraps ``send`` when used alone.

After it: ``scope["client"]`` is ``(client address, 0)`` when a trusted proxy named the client
(the port is the proxy's business), ``scope["scheme"]`` is what the proxy reported (``ws``/``wss``
for websockets), and when the proxy reported a host, the ``host`` header and
``scope["server"]`` say it. Starlette's ``request.client.host``, ``request.url`` and
``url_for`` then give the effective values, and so does everything inside (rate limits,
security headers reading the scheme at response start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fender._http import PEER_KEY, Forwarding
from fender.http.edge import Edge, EdgeRequest
from fender.middleware.asgi.access import RESPONSE_HEADERS, send_response

if TYPE_CHECKING:
    from fender._types import ASGIApp, Message, Receive, Scope, Send
    from fender.http.endpoints import Response
    from fender.ratelimit._clientip import Resolution

__all__ = ["EdgeMiddleware"]

# The headers the edge reads, and their slot in one pass over the scope's headers.
_READ: Final = {
    b"host": 0,
    b"origin": 1,
    b"access-control-request-method": 2,
    b"access-control-request-headers": 3,
    b"x-forwarded-for": 4,
    b"forwarded": 5,
    b"x-forwarded-proto": 6,
    b"x-forwarded-host": 7,
}
_HOST: Final = b"host"
_POLICY_VIOLATION: Final = 1008
_DEFAULT_PORT: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def head_of(scope: Scope) -> tuple[str, int]:
    """The request target as sent, and the size of the request line and headers."""
    raw_path = scope.get("raw_path")
    target = raw_path.decode("latin-1") if raw_path else scope["path"]
    query: bytes = scope.get("query_string", b"")
    if query:
        target = f"{target}?{query.decode('latin-1')}"
    headers = scope["headers"]
    # The request line (method, target, protocol, three separators), then ": " and CRLF a line.
    size = len(scope.get("method", "GET")) + len(target) + 12 + 4 * len(headers)
    for name, value in headers:
        size += len(name) + len(value)
    return target, size


def edge_request(scope: Scope) -> EdgeRequest:
    """What the edge reads of an HTTP or websocket scope."""
    method: str = scope.get("method", "GET")
    target, size = head_of(scope)
    found: list[str | None] = [None] * 8
    headers = scope["headers"]
    for name, value in headers:
        slot = _READ.get(name)
        if slot is not None:
            text = value.decode("latin-1")
            previous = found[slot]
            found[slot] = text if previous is None else f"{previous},{text}"
    client = scope.get("client")
    state = scope.get("state")
    return EdgeRequest(
        method=method,
        path=scope["path"],
        target=target,
        scheme=scope.get("scheme", "http"),
        host=found[0],
        peer=client[0] if client else None,
        forwarding=Forwarding(found[4], found[5], found[6], found[7]),
        head_bytes=size,
        header_count=len(headers),
        origin=found[1],
        preflight_method=found[2],
        preflight_headers=found[3],
        request_id=state.get("request_id") if state else None,
    )


def apply_resolution(scope: Scope, resolution: Resolution, *, websocket: bool = False) -> None:
    """Write the effective client, scheme and host into ``scope``; the peer to PEER_KEY."""
    client = scope.get("client")
    scope[PEER_KEY] = client
    address = resolution.address
    if address and (client is None or client[0] != address):
        scope["client"] = (address, 0)
    scheme = resolution.scheme
    if scheme is not None:
        if websocket:
            scheme = "wss" if scheme == "https" else "ws"
        scope["scheme"] = scheme
    host = resolution.host
    if host is not None:
        raw = host.encode("latin-1")
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != _HOST] + [(_HOST, raw)]
        name, _, port = host.rpartition(":") if not host.endswith("]") else ("", "", "")
        if not name or not port.isdigit():
            name, port = host, ""
        default = _DEFAULT_PORT.get(scope.get("scheme", "http"), 80)
        scope["server"] = (name.strip("[]"), int(port) if port else default)


async def _refuse(send: Send, answer: Response, *, websocket: bool) -> None:
    """Send the edge's own answer (a websocket is refused before its handshake: 403)."""
    if websocket:
        await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
    else:
        await send_response(send, answer, (("content-length", str(len(answer.body))),))


class EdgeMiddleware:
    """Pure ASGI middleware: :class:`~fender.http.edge.Edge` around ``app`` (see the module)."""

    __slots__ = ("app", "edge")

    def __init__(self, app: ASGIApp, edge: Edge) -> None:
        """Wrap ``app`` with the ``edge`` built for it (one per app, from its settings)."""
        self.app = app
        self.edge = edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope; lifespan passes through."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":  # noqa: PLR1714  (the fastest test)
            await self.app(scope, receive, send)
            return
        websocket = kind == "websocket"
        edge = self.edge
        if edge.passive and not websocket:
            # The default edge: the head's size, no EdgeRequest (see Edge.passes).
            target, size = head_of(scope)
            if edge.passes(scope["path"], target, size, len(scope["headers"])):
                await self.app(scope, receive, send)
                return
        decision = edge.handle(edge_request(scope), websocket=websocket)
        if decision.resolution is not None:
            apply_resolution(scope, decision.resolution, websocket=websocket)
        if decision.response is not None:
            await _refuse(send, decision.response, websocket=websocket)
            return
        if not decision.headers:
            await self.app(scope, receive, send)
            return
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in decision.headers]
        response_headers = scope.get(RESPONSE_HEADERS)
        if response_headers is not None:  # the access layer adds them: no second wrapper
            response_headers.extend(extra)
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
