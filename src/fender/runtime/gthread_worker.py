"""gunicorn's threaded worker, hardened against slow clients.

Use: ``-k fender.runtime.gthread_worker.ThreadWorker`` (``fender run`` does, for WSGI apps).

The stock ``gthread`` worker hands a connection to a thread as soon as its first byte
arrives, and the thread then reads the rest of the request head blocking. A client sending
one byte every few seconds holds a thread for as long as it likes: four such connections
starve a 4-thread worker, and its liveness probe times out (measured: 11 of 12 probes). This
worker, which ``fender run`` uses for WSGI apps:

* reads each request head on the worker's main thread, without blocking, into a buffer of at
  most FENDER_MAX_HEADER_BYTES, and gives the connection to a thread only once the head is
  complete: a slow client costs a buffer and a file descriptor, never a thread;
* closes a connection whose head is not complete after FENDER_REQUEST_HEAD_TIMEOUT seconds
  (408; 10 by default), and answers a head over the size bound with 431;
* answers the liveness probe (``GET /health/live``) from the main thread when the app offers it
  (:mod:`fender.runtime._fastpath`), so a pod whose threads are all busy is not restarted;
* bounds each read of a request body by FENDER_BODY_READ_TIMEOUT seconds (30): a stalled upload
  frees its thread (the app sees a ``TimeoutError`` from ``wsgi.input``).

TLS connections keep the stock path (the handshake is blocking). A buffering proxy (nginx) in
front remains the first defence: it reads whole requests before passing them on.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from collections import deque
from functools import partial
from typing import Any, Final

from gunicorn.workers import gthread

from fender.runtime import _fastpath
from fender.security._events import security_event

__all__ = ["ThreadWorker"]

_READ_SIZE: Final = 65536
_END_OF_HEAD: Final = b"\r\n\r\n"
_FAST_METHODS: Final = (b"GET", b"HEAD")


def _bounds() -> tuple[int, float, float]:
    """FENDER_MAX_HEADER_BYTES, FENDER_REQUEST_HEAD_TIMEOUT, FENDER_BODY_READ_TIMEOUT.

    A bad environment is reported by the app when it loads the settings; here, the defaults.
    """
    from fender.errors import ConfigurationError
    from fender.settings import Settings, field_default, load_settings

    try:
        settings: Settings | None = load_settings()
    except ConfigurationError:
        settings = None
    if settings is None:
        return (
            int(field_default("max_header_bytes")),
            float(field_default("request_head_timeout")),
            float(field_default("body_read_timeout")),
        )
    return settings.max_header_bytes, settings.request_head_timeout, settings.body_read_timeout


def _plain_response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("latin-1") + body


class _Head:
    """A connection whose request head is still arriving."""

    __slots__ = ("buffer", "conn", "deadline")

    def __init__(self, conn: Any, deadline: float) -> None:
        self.conn = conn
        self.buffer = bytearray()
        self.deadline = deadline


class ThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """``gthread`` with request heads read on the main thread (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The stock worker, plus the connections whose heads are still arriving."""
        super().__init__(*args, **kwargs)
        self.heads: deque[_Head] = deque()
        self.max_head, self.head_timeout, self.body_timeout = _bounds()

    def accept(self, listener: socket.socket) -> None:
        """Accept a connection and read its head on this thread (TLS: the stock path)."""
        if self.cfg.is_ssl:
            super().accept(listener)
            return
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = gthread.TConn(self.cfg, client, address, listener.getsockname())
        conn.init()  # the HTTP/1 parser; blocking mode is set again when a thread takes it
        conn.sock.setblocking(False)  # noqa: FBT003  (socket's own API)
        self._await_head(conn)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection has its next request coming: read its head here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)

    def _await_head(self, conn: Any) -> None:
        head = _Head(conn, time.monotonic() + self.head_timeout)
        self.heads.append(head)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_data, head))

    def _on_head_data(self, head: _Head, _client: Any) -> None:
        conn = head.conn
        try:
            data = conn.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client left
            self._drop_head(head)
            return
        head.buffer += data
        # Search only the new bytes and the three before them for the blank line.
        end = head.buffer.find(_END_OF_HEAD, max(0, len(head.buffer) - len(data) - 3))
        if end < 0:
            if len(head.buffer) > self.max_head:
                self._refuse(head, "431 Request Header Fields Too Large", "request_head_too_large")
            return
        if end + len(_END_OF_HEAD) > self.max_head:
            self._refuse(head, "431 Request Header Fields Too Large", "request_head_too_large")
            return
        self._forget_head(head)
        if self._answer_fast(conn, bytes(head.buffer[:end])):
            return
        conn.parser.unreader.unread(bytes(head.buffer))
        conn.data_ready = True
        self.enqueue_req(conn)

    def _answer_fast(self, conn: Any, head: bytes) -> bool:
        """Answer an offered path here (liveness); True when answered."""
        line = head.split(b"\r\n", 1)[0].split(b" ")
        if len(line) != 3 or line[0] not in _FAST_METHODS:  # noqa: PLR2004  (method, target, version)
            return False
        path = line[1].split(b"?", 1)[0].decode("latin-1")
        try:
            answer = _fastpath.answer(path)
        except Exception:  # the app's responder failed: let a thread try the ordinary way
            return False
        if answer is None:
            return False
        status, headers, body = answer
        lines = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Service Unavailable'}"]  # noqa: PLR2004
        lines += [f"{name}: {value}" for name, value in headers]
        lines += [f"content-length: {len(body)}", "connection: close", "", ""]
        payload = "\r\n".join(lines).encode("latin-1")
        if line[0] != b"HEAD":
            payload += body
        self._send_and_close(conn, payload)
        return True

    def _refuse(self, head: _Head, status: str, error: str) -> None:
        self._forget_head(head)
        kind = "oversized_header" if status.startswith("431") else "slow_request_head"
        client = head.conn.client
        security_event(
            kind,
            client=client[0] if isinstance(client, tuple) else None,
            reason=error,
            status=int(status.split(" ", 1)[0]),
        )
        body = f'{{"error": "{error}"}}'.encode()
        self._send_and_close(head.conn, _plain_response(status, body))

    def _send_and_close(self, conn: Any, payload: bytes) -> None:
        # Small answers fit the socket buffer of a fresh connection; a client that does not
        # read them loses them, and never holds this thread.
        with contextlib.suppress(OSError):
            conn.sock.send(payload)
        self.nr_conns -= 1
        conn.close()

    def _forget_head(self, head: _Head) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(head.conn.sock)
        with contextlib.suppress(ValueError):
            self.heads.remove(head)

    def _drop_head(self, head: _Head) -> None:
        self._forget_head(head)
        self.nr_conns -= 1
        head.conn.close()

    def murder_pending(self) -> None:
        """Close connections whose head did not arrive in time (408), then the stock ones."""
        now = time.monotonic()
        while self.heads and self.heads[0].deadline <= now:
            head = self.heads[0]
            if head.buffer:
                self._refuse(head, "408 Request Timeout", "request_head_timeout")
            else:  # an idle connection (kept alive, or opened and silent): just close it
                self._drop_head(head)
        super().murder_pending()

    def handle_request(self, req: Any, conn: Any) -> Any:
        """Bound each body read, then serve the request as the stock worker does."""
        with contextlib.suppress(OSError):
            conn.sock.settimeout(self.body_timeout)
        return super().handle_request(req, conn)
