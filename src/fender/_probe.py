"""The HTTP GET of ``fender probe``: one request, the status code and the body.

A container HEALTHCHECK runs the probe every few seconds for the life of the container, so it
loads as little as it can: plain ``http://`` is one HTTP/1.1 exchange over a socket
(``Connection: close``; ``Content-Length`` and chunked bodies both read); ``https://`` goes
through :mod:`http.client` and :mod:`ssl`, imported only then.
"""

from __future__ import annotations

import socket
from urllib.parse import SplitResult, urlsplit

__all__ = ["MAX_BODY", "get"]

MAX_BODY = 1 << 20
"""Bytes of an answer read at most: a health body is small; a huge one is not read whole."""


def get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET ``url`` (http or https): its status code and body.

    Raises:
        OSError: no connection, a timeout, or an answer that is not HTTP.
    """
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        return _get_tls(parts, target, timeout)
    host = parts.hostname or ""
    with socket.create_connection((host, parts.port or 80), timeout=timeout) as conn:
        conn.sendall(_request(parts, target))
        raw = _read_all(conn)
    return _parse(raw)


def _request(parts: SplitResult, target: str) -> bytes:
    authority = parts.netloc.rpartition("@")[2]  # never send credentials in Host
    return (
        f"GET {target} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\n"
        "User-Agent: fender-probe\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")


def _read_all(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[int, bytes]:
    head, separator, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    fields = status_line.split(None, 2)
    if not separator or len(fields) < 2 or not fields[0].startswith(b"HTTP/"):  # noqa: PLR2004
        raise OSError(f"not an HTTP answer: {raw[:60]!r}")
    try:
        code = int(fields[1])
    except ValueError:
        raise OSError(f"not an HTTP status: {status_line[:60]!r}") from None
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        return code, _unchunk(body)
    length = headers.get(b"content-length")
    if length is not None and length.isdigit():
        body = body[: int(length)]
    return code, body


def _unchunk(body: bytes) -> bytes:
    out: list[bytes] = []
    rest = body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise OSError(f"a malformed chunk size: {size_line[:20]!r}") from None
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


def _get_tls(parts: SplitResult, target: str, timeout: float) -> tuple[int, bytes]:
    import http.client
    import ssl

    conn = http.client.HTTPSConnection(
        parts.hostname or "", parts.port, timeout=timeout, context=ssl.create_default_context()
    )
    try:
        conn.request("GET", target, headers={"Accept": "application/json"})
        response = conn.getresponse()
        return response.status, response.read(MAX_BODY)
    except http.client.HTTPException as error:
        raise OSError(f"not an HTTP answer: {error}") from None
    finally:
        conn.close()
