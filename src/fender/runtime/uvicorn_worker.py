"""gunicorn worker class for ASGI apps: ``-k fender.runtime.uvicorn_worker.UvicornWorker``.

The stock ``uvicorn_worker.UvicornWorker`` does not pass gunicorn's ``graceful_timeout`` to
uvicorn: uvicorn then waits for slow requests without a bound, gunicorn SIGKILLs the worker
when its own timeout runs out, and the app's lifespan shutdown (closing pools, flushing) never
runs. This worker gives uvicorn a graceful budget a little shorter than gunicorn's, so uvicorn
cancels what is still running, logs it, and runs the lifespan shutdown in time. It also sends
uvicorn's log records through fender's renderer (the stock worker pins them to gunicorn's
handlers), and turns uvicorn's proxy-header handling off: fender's edge is the one reader
of ``X-Forwarded-*`` (uvicorn would make any string of ``X-Forwarded-For`` the client address,
before fender could judge it).

The request head is bounded (FENDER_MAX_HEADER_BYTES, FENDER_MAX_HEADER_COUNT): httptools
buffers a header line whole before the app sees it, so 8 connections of 64 MiB headers grew a
worker by 490 MB. :class:`BoundedHttpToolsProtocol` counts the head's bytes as they arrive and
its header lines as they are parsed, and past either bound answers 431 and closes the
connection, with an ``oversized_header`` security event. (Bytes are counted from the first
byte read after the previous request's end: a pipelined head that shares a read with the
previous body may overshoot by that read, at most 256 KiB.) With ``--http h11`` (or
``http="h11"``), h11 gets the byte bound as its ``h11_max_incomplete_event_size`` (uvicorn
answers 400 there).
With FENDER_HIDE_VERSIONS, uvicorn sends no ``Server`` header.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar, Final

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker as _StockWorker

from fender.security._events import security_event

__all__ = [
    "SHUTDOWN_MARGIN",
    "BoundedHttpToolsProtocol",
    "UvicornWorker",
    "bounded_protocol",
    "graceful_budget",
]

_TOO_LARGE_BODY: Final = orjson.dumps(
    {"error": "request_header_fields_too_large", "request_id": None}
)
_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_TOO_LARGE_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TOO_LARGE_BODY
)


class _HeadTooLarge(Exception):  # noqa: N818  (a signal through the parser, not an error)
    """Raised in a parser callback: the head has more header lines than allowed."""


def _oversized(client: Any, what: str, limit: int) -> None:
    """A ``security_event`` of type ``oversized_header``."""
    security_event(
        "oversized_header",
        client=client[0] if client else None,
        reason=f"request head over {limit} {what}",
        status=431,
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head (see the module)."""

    max_head_bytes: ClassVar[int] = 32768
    max_header_count: ClassVar[int] = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The stock protocol, counting from the connection's first byte."""
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._too_many = False

    def data_received(self, data: bytes) -> None:
        """Feed the parser, never more than the head's bound before the head ends."""
        if not self._in_head:
            super().data_received(data)
            return
        room = self.max_head_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # The head must end within what is left of the bound, or it is too large.
        self._head_bytes += room
        super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self._in_head:
            self._reject("bytes", self.max_head_bytes)
            return
        super().data_received(data[room:])

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header lines; past the bound, stop the parser."""
        super().on_header(name, value)
        if len(self.headers) > self.max_header_count:
            self._too_many = True
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        """The head is complete: its bytes no longer count."""
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The next bytes are the next request's head."""
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """A parser error: 431 when it was the header count, else uvicorn's 400."""
        if self._too_many:
            self._reject("header lines", self.max_header_count)
            return
        super().send_400_response(msg)

    def _reject(self, what: str, limit: int) -> None:
        _oversized(self.client, what, limit)
        self.transport.write(_TOO_LARGE)
        self.transport.close()


def _close_listeners(server: Any) -> None:
    """Stop accepting: the listeners close, accepted connections are still served."""
    for listener in server.servers:
        listener.close()


def bounded_protocol(max_head_bytes: int, max_header_count: int) -> type[HttpToolsProtocol]:
    """A :class:`BoundedHttpToolsProtocol` class with these bounds."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "max_header_count": max_header_count},
    )


SHUTDOWN_MARGIN: Final = 0.2
"""Share of gunicorn's graceful_timeout kept for the lifespan shutdown (at least 1 s)."""


def graceful_budget(graceful_timeout: float) -> int:
    """Seconds uvicorn waits for in-flight requests, leaving time for the lifespan shutdown."""
    margin = max(1.0, graceful_timeout * SHUTDOWN_MARGIN)
    return max(1, math.floor(graceful_timeout - margin))


class UvicornWorker(_StockWorker):  # type: ignore[misc]
    """uvicorn under gunicorn, with a bounded graceful shutdown and fender's logging."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "auto",
        "http": "auto",
        "access_log": False,
        "proxy_headers": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build the stock worker, then fix its shutdown budget and its loggers."""
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = graceful_budget(self.cfg.graceful_timeout)
        self._bound_requests()
        for name in ("uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers = []
            logger.propagate = True

    async def _serve(self) -> None:
        """Serve as the stock worker does, keeping the server so its accepting can stop.

        The memory guard, recycling this worker, stops the accepting first (see
        :data:`~fender.runtime._lifecycle.STOP_ACCEPTING`).
        """
        import asyncio
        import sys

        from gunicorn.arbiter import Arbiter
        from uvicorn.server import Server

        from fender.runtime._lifecycle import STOP_ACCEPTING

        self.config.app = self.wsgi
        server = Server(config=self.config)
        self._install_sigquit_handler()
        loop = asyncio.get_running_loop()

        def stop_accepting() -> None:  # called from the memory guard's thread
            loop.call_soon_threadsafe(_close_listeners, server)

        STOP_ACCEPTING.append(stop_accepting)
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def _bound_requests(self) -> None:
        """Bound the request head and hide the Server header, as the settings say."""
        from fender.errors import ConfigurationError
        from fender.settings import load_settings

        try:
            settings = load_settings()
        except ConfigurationError:
            return  # reported when the app loads them; uvicorn's defaults meanwhile
        self.config.h11_max_incomplete_event_size = settings.max_header_bytes
        if self.config.http in {"auto", "httptools"}:
            self.config.http = bounded_protocol(
                settings.max_header_bytes, settings.max_header_count
            )
        if settings.versions_hidden:
            self.config.server_header = False
