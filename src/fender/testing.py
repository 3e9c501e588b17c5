"""Helpers for your own tests: a manual clock and a capture of fender's log events.

Example:
    >>> from fender.testing import capture_logs
    >>> with capture_logs() as logs:
    ...     get_logger("app").info("hello", user=42)
    >>> logs.named("hello")[0]["user"]
    42
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import orjson

from fender._clock import ManualClock
from fender.observability._logging import configure_logging, get_logger
from fender.settings import Settings, load_settings

__all__ = ["LogCapture", "ManualClock", "capture_logs", "get_logger"]


class LogCapture:
    """The JSON lines fender wrote while capturing, parsed."""

    def __init__(self) -> None:
        """Start empty."""
        self.stream = io.StringIO()

    @property
    def lines(self) -> list[str]:
        """Raw lines, as they would reach stdout."""
        return self.stream.getvalue().splitlines()

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every line as a dict (each line is one JSON object)."""
        return [orjson.loads(line) for line in self.lines]

    def named(self, event: str) -> list[dict[str, Any]]:
        """The events whose ``event`` field is ``event``."""
        return [e for e in self.events if e.get("event") == event]


@contextlib.contextmanager
def capture_logs(settings: Settings | None = None, *, level: str = "DEBUG") -> Iterator[LogCapture]:
    """Send fender's logs (access events included) to a :class:`LogCapture` as JSON lines.

    Afterwards logging is configured again for stdout, from ``settings``.
    """
    if settings is None:
        settings = load_settings()
    capture = LogCapture()
    configure_logging(settings, level=level, fmt="json", stream=capture.stream)
    try:
        yield capture
    finally:
        configure_logging(settings)
