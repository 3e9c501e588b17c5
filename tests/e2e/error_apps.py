"""Apps that fail in every way a response can, for real servers (module path: error_apps).

``wsgi``: a bare WSGI app (``fender.wsgi.wrap``); ``flask``: Flask with ``Fender``; ``asgi``: a
bare ASGI app (``fender.asgi.wrap``); ``fastapi``: FastAPI with ``fender.install``. Each serves
``/ok`` and the failures below; a failing path raises ``RuntimeError("secret detail")``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from flask import Flask, Response, stream_with_context

import fender
from fender.flask import Fender

SECRET = "secret detail"
# A header the failed response set and the JSON 500 must not carry.
APP_HEADERS = [("Content-Type", "text/plain"), ("Set-Cookie", "session=leaked")]


def _fail() -> None:
    raise ValueError(SECRET)


def _fails_before_first() -> Iterator[bytes]:
    raise RuntimeError(SECRET)
    yield b""  # pragma: no cover  (a generator)


def _fails_midway() -> Iterator[bytes]:
    yield b"part1"
    raise RuntimeError(SECRET)


def _bare_wsgi(  # noqa: PLR0911  (one branch a failure)
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Any:
    path = environ["PATH_INFO"]
    if path == "/gen-raises-before-first":
        start_response("200 OK", APP_HEADERS)
        return _fails_before_first()
    if path == "/gen-raises-midstream":
        start_response("200 OK", APP_HEADERS)
        return _fails_midway()
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
    if path == "/own-error-page":
        start_response("200 OK", APP_HEADERS)
        try:
            _fail()
        except ValueError:
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"the app's own error page"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


wsgi = fender.wsgi.wrap(_bare_wsgi)

flask = Flask(__name__)


@flask.get("/stream-raise-first")
def stream_raise_first() -> Response:
    return Response(stream_with_context(_fails_before_first()), mimetype="text/plain")


@flask.get("/stream-raise-mid")
def stream_raise_mid() -> Response:
    return Response(_fails_midway(), mimetype="text/plain")


@flask.get("/ok")
def flask_ok() -> str:
    return "ok"


Fender(flask)


async def _bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/no-response":
        return
    if path == "/raise-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part1", "more_body": True})
        raise RuntimeError(SECRET)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


asgi = fender.asgi.wrap(_bare_asgi)

fastapi = FastAPI()


@fastapi.get("/stream-raise-mid")
async def fastapi_stream_raise_mid() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"part1"
        raise RuntimeError(SECRET)

    return StreamingResponse(chunks(), media_type="text/plain")


@fastapi.get("/ok")
async def fastapi_ok() -> dict[str, str]:
    return {"status": "ok"}


fender.install(fastapi)
