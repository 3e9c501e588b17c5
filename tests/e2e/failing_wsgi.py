"""A WSGI app that fails in every way a response can (no fender here: it is what gets wrapped).

Served by gunicorn through ``error_apps`` (module path ``failing_wsgi`` there) and called
in process by tests/web/test_error_paths.py (``e2e.failing_wsgi``). Each failing path raises
with :data:`SECRET`, which must never reach a client.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

SECRET = "secret detail"
# A header the failed response set and the JSON 500 must not carry.
APP_HEADERS = [("Content-Type", "text/plain"), ("Set-Cookie", "session=leaked")]


def fail(exc: BaseException | None = None) -> None:
    """Raise ``exc``, or a ValueError carrying the secret."""
    raise exc or ValueError(SECRET)


def fails_before_first() -> Iterator[bytes]:
    """A body that fails before its first chunk."""
    raise RuntimeError(SECRET)
    yield b""  # pragma: no cover  (a generator)


def fails_midway() -> Iterator[bytes]:
    """A body that fails after its first chunk."""
    yield b"part1"
    raise RuntimeError(SECRET)


def _lazy_without_start(environ: Any, start_response: Any) -> Iterator[bytes]:
    yield b""


def every_failure(  # noqa: C901, PLR0911, PLR0912  (one branch a failure)
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Any:
    """Fail as ``PATH_INFO`` names; any other path answers ``200 ok``."""
    path = environ["PATH_INFO"]
    if path == "/gen-raises-before-first":
        start_response("200 OK", APP_HEADERS)
        return fails_before_first()
    if path == "/gen-raises-midway":
        start_response("200 OK", APP_HEADERS)
        return fails_midway()
    if path == "/raise-after-start":
        start_response("200 OK", APP_HEADERS)
        raise RuntimeError(SECRET)
    if path == "/returns-none":
        start_response("200 OK", APP_HEADERS)
        return None
    if path == "/no-start-response":
        return [b"forgot start_response"]
    if path == "/empty-lazy":
        return iter(())
    if path == "/lazy-without-start":
        return _lazy_without_start(environ, start_response)
    if path == "/start-twice":
        start_response("200 OK", APP_HEADERS)
        start_response("201 Created", APP_HEADERS)
        return [b"x"]
    if path == "/bad-header":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Bad", "a\nb")])
        return [b"x"]
    if path == "/bad-header-write":
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("X-Bad", "a\nb")])
        write(b"x")
        return [b"never"]
    if path == "/own-error-page":
        start_response("200 OK", APP_HEADERS)
        try:
            fail()
        except ValueError:
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"the app's own error page"]
    if path == "/exc-info-after-write":
        write = start_response("200 OK", APP_HEADERS)
        write(b"a")
        try:
            fail()
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"never"]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        return [b"", b"b"]
    if path == "/empty-chunks":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"", b"x", b"", b"y"]
    if path == "/no-content":
        start_response("204 No Content", [])
        return [b"", b""]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
