"""WSGI: the edge of the request path, as :mod:`fender.middleware.asgi.edge` does for ASGI.

After it: ``REMOTE_ADDR`` is the effective client (the socket peer stays at
:data:`~fender._http.PEER_KEY`), ``wsgi.url_scheme`` the scheme a trusted proxy reported, and
``HTTP_HOST`` the host it reported: Flask's ``request.remote_addr``, ``request.scheme`` and
``url_for(..., _external=True)`` give the effective values. Response headers (CORS) go to the
access layer's :data:`~fender.middleware.wsgi.access.RESPONSE_HEADERS` list, or through a
wrapped ``start_response`` when used alone.

WSGI servers join a repeated header into one ``HTTP_*`` variable: the header count the edge
sees is the number of distinct names.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from fender._http import PEER_KEY, environ_forwarding, status_line
from fender.http.edge import Edge, EdgeRequest
from fender.middleware.wsgi.access import RESPONSE_HEADERS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fender._types import StartResponse, WSGIApp, WSGIEnviron
    from fender.ratelimit._clientip import Resolution

__all__ = ["EdgeWSGI"]

_SAFE_PATH: Final = "/:@!$&'()*+,;=-._~"
_UNQUOTED: Final = re.compile(r"[A-Za-z0-9_.~/:@!$&'()*+,;=-]*")  # what quote() keeps as is


def head_of(environ: WSGIEnviron) -> tuple[str, str, str, int, int]:
    """Method, decoded path, target as sent, size of the request line and headers, and count."""
    method = str(environ.get("REQUEST_METHOD", "GET"))
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    # The target as sent when the server keeps it (gunicorn: RAW_URI), else rebuilt.
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        # quote() leaves a path of safe characters as it is: skip its cost for those.
        target = path if _UNQUOTED.fullmatch(path) else _quoted(path)
        query = environ.get("QUERY_STRING")
        if query:
            target = f"{target}?{query}"
    size = len(method) + len(target) + 12
    count = 0
    for key, value in environ.items():
        if key.startswith("HTTP_") or key in {"CONTENT_TYPE", "CONTENT_LENGTH"}:
            count += 1
            size += len(key) + len(value) + 4 if isinstance(value, str) else 0
    return method, path, str(target), size, count


def _quoted(path: str) -> str:
    return quote(path.encode("latin-1", "replace"), safe=_SAFE_PATH)


def edge_request(environ: WSGIEnviron) -> EdgeRequest:
    """What the edge reads of a WSGI environ."""
    method, path, target, size, count = head_of(environ)
    return EdgeRequest(
        method=method,
        path=path,
        target=target,
        scheme=str(environ.get("wsgi.url_scheme", "http")),
        host=environ.get("HTTP_HOST"),
        peer=environ.get("REMOTE_ADDR"),
        forwarding=environ_forwarding(environ),
        head_bytes=size,
        header_count=count,
        origin=environ.get("HTTP_ORIGIN"),
        preflight_method=environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"),
        preflight_headers=environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"),
        request_id=environ.get("fender.request_id"),
    )


def apply_resolution(environ: WSGIEnviron, resolution: Resolution) -> None:
    """Write the effective client, scheme and host into ``environ``; the peer to PEER_KEY."""
    environ[PEER_KEY] = environ.get("REMOTE_ADDR")
    if resolution.address:
        environ["REMOTE_ADDR"] = resolution.address
    if resolution.scheme is not None:
        environ["wsgi.url_scheme"] = resolution.scheme
    if resolution.host is not None:
        environ["HTTP_HOST"] = resolution.host


class EdgeWSGI:
    """WSGI middleware: :class:`~fender.http.edge.Edge` around ``app`` (see the module)."""

    __slots__ = ("app", "edge")

    def __init__(self, app: WSGIApp, edge: Edge) -> None:
        """Wrap ``app`` with the ``edge`` built for it (one per app, from its settings)."""
        self.app = app
        self.edge = edge

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request."""
        edge = self.edge
        if edge.passive:
            # The default edge: the head's size, no EdgeRequest (see Edge.passes).
            _, path, target, size, count = head_of(environ)
            if edge.passes(path, target, size, count):
                return self.app(environ, start_response)
        decision = edge.handle(edge_request(environ))
        if decision.resolution is not None:
            apply_resolution(environ, decision.resolution)
        response = decision.response
        if response is not None:
            headers = [*response.headers, ("content-length", str(len(response.body)))]
            start_response(status_line(response.status), headers)
            return [response.body]
        extra = decision.headers
        if not extra:
            return self.app(environ, start_response)
        response_headers = environ.get(RESPONSE_HEADERS)
        if response_headers is not None:  # the access layer adds them: no second wrapper
            response_headers.extend(extra)
            return self.app(environ, start_response)

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            headers = [*headers, *extra]  # a copy: the app may reuse its list
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_headers)
