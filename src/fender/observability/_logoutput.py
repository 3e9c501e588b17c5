"""How log lines are rendered and written: one formatter for every record, one write a line.

:func:`formatter` renders structlog's events and the stdlib's records alike (JSON, or colored
console lines), secrets masked by the :class:`~fender.observability._redaction.Redactor`
after a traceback became text; :class:`LineHandler` writes each as one line with one call of
a writer (:func:`line_writer` for a stream, :func:`both` for stdout and the log file).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import IO, Any

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from fender.observability._redaction import Redactor
from fender.observability._structlog import rich_console_tracebacks

__all__ = [
    "LineHandler",
    "both",
    "formatter",
    "line_writer",
    "plain_text",
    "write_all",
]


def write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd``: one ``write``, more only when the first was cut short."""
    written = os.write(fd, data)
    if written < len(data):  # a large line, a full disk or a signal may cut it
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def line_writer(stream: IO[str] | IO[bytes]) -> Callable[[bytes], None]:
    """A function writing one whole line per call to ``stream``."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd >= 0:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()  # whatever Python buffered goes first

        def write_fd(data: bytes) -> None:
            write_all(fd, data)

        return write_fd
    if "b" in getattr(stream, "mode", ""):
        binary_stream: IO[bytes] = stream  # type: ignore[assignment]

        def write_binary(data: bytes) -> None:
            binary_stream.write(data)

        return write_binary
    text_stream: IO[str] = stream  # type: ignore[assignment]

    def write_text(data: bytes) -> None:
        text_stream.write(data.decode())

    return write_text


def both(
    first: Callable[[bytes], None], second: Callable[[bytes], None]
) -> Callable[[bytes], None]:
    """A writer writing each line with ``first``, then ``second`` even if ``first`` failed."""

    def write(data: bytes) -> None:
        try:
            first(data)
        finally:
            second(data)

    return write


class LineHandler(logging.Handler):
    """Writes each formatted record as one line with one write call."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        super().__init__()
        self.write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "replace")
            self.write(line)
        except OSError:
            # The output is gone (closed pipe, closed fd at interpreter exit): nowhere to
            # report to, and a traceback per record on stderr would bury the real output.
            return
        except Exception:
            self.handleError(record)


def _drop_duplicate_message(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """A stdlib record formatted by another handler first carries its text twice."""
    if event.get("message") == event.get("event"):
        del event["message"]
    return event


def plain_text(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """A stdlib record's text as text: no terminal codes, no trailing newline.

    uvicorn passes a copy of each message with ANSI colors as the ``color_message`` extra;
    a warning's text (:func:`warnings.formatwarning`) ends with a newline.
    """
    event.pop("color_message", None)
    text = event.get("event")
    if isinstance(text, str) and text.endswith("\n"):
        event["event"] = text.rstrip()
    return event


def _json_dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def formatter(
    pre_chain: list[Processor], redactor: Redactor | None, *, json: bool = True
) -> structlog.stdlib.ProcessorFormatter:
    """Renders records as JSON or console lines; ``pre_chain`` runs on stdlib records first."""
    final: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _drop_duplicate_message,
    ]
    if json:
        final.append(structlog.processors.format_exc_info)
    if redactor is not None:
        final.append(redactor)  # after the traceback became text: that is masked too
    if json:
        final.append(structlog.processors.JSONRenderer(serializer=_json_dumps))
    elif redactor is not None:
        final.append(structlog.dev.ConsoleRenderer(exception_formatter=redactor.traceback))
    else:
        rich_console_tracebacks()
        final.append(structlog.dev.ConsoleRenderer(colors=True))
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre_chain, processors=final)
