"""Apps that fail in every way a response can, for real servers (module path: error_apps).

``wsgi``: ``failing_wsgi.every_failure`` in ``fender.wsgi.wrap``; ``flask``: Flask with
``Fender``; ``asgi``: a bare ASGI app (``fender.asgi.wrap``); ``fastapi``: FastAPI with
``fender.install``. Each serves ``/ok`` and the failures below; a failing path raises
``RuntimeError("secret detail")``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from failing_wsgi import SECRET, every_failure, fails_before_first, fails_midway
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from flask import Flask, Response, stream_with_context

import fender
from fender.flask import Fender

wsgi = fender.wsgi.wrap(every_failure)

flask = Flask(__name__)


@flask.get("/stream-raise-first")
def stream_raise_first() -> Response:
    return Response(stream_with_context(fails_before_first()), mimetype="text/plain")


@flask.get("/stream-raise-mid")
def stream_raise_mid() -> Response:
    return Response(fails_midway(), mimetype="text/plain")


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
