"""The same small service in every flavour fender supports, for the request-path tests.

Each app serves: GET /items/{item_id} (JSON), GET /boom (raises), GET /log (logs one event
and echoes the request id it sees), and 404 elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import fender
from fender.observability._logging import current_request, get_logger

log = get_logger("app")

OPTIONS: dict[str, Any] = {"env": "development", "log_format": "json"}


def _rid() -> str | None:
    context = current_request()
    return context.request_id if context else None


def fastapi_app(**options: Any) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail that must not reach the client")

    @app.get("/log")
    async def log_it() -> dict[str, str | None]:
        await asyncio.sleep(0)  # let other requests interleave
        log.info("handled")
        return {"request_id": _rid()}

    fender.install(app, **{**OPTIONS, **options})
    return app


def starlette_app(**options: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    async def item(request: Any) -> JSONResponse:
        return JSONResponse({"item_id": request.path_params["item_id"]})

    async def boom(request: Any) -> JSONResponse:
        raise RuntimeError("secret detail that must not reach the client")

    async def log_it(request: Any) -> JSONResponse:
        await asyncio.sleep(0)
        log.info("handled")
        return JSONResponse({"request_id": _rid()})

    inner = Starlette(routes=[Route("/things/{thing_id:int}", item)])
    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", item),
            Route("/boom", boom),
            Route("/log", log_it),
            Mount("/sub", app=inner),
        ]
    )
    fender.install(app, **{**OPTIONS, **options})
    return app


def flask_app(**options: Any) -> Any:
    from flask import Flask, jsonify

    from fender.flask import Fender

    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return jsonify(item_id=item_id)

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("secret detail that must not reach the client")

    @app.get("/log")
    def log_it() -> Any:
        time.sleep(0.001)  # let other threads' requests interleave
        log.info("handled")
        return jsonify(request_id=_rid())

    Fender(app, **{**OPTIONS, **options})
    return app


def _bare_route(path: str) -> tuple[int, bytes]:
    if path.startswith("/items/"):
        return 200, json.dumps({"item_id": int(path.rsplit("/", 1)[1])}).encode()
    if path == "/boom":
        raise RuntimeError("secret detail that must not reach the client")
    if path == "/log":
        time.sleep(0.001)  # let other threads' requests interleave (WSGI)
        log.info("handled")
        return 200, json.dumps({"request_id": _rid()}).encode()
    return 404, b'{"error": "not found"}'


def bare_asgi_app(**options: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        if scope["path"] == "/log":
            await asyncio.sleep(0)
        status, body = _bare_route(scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return fender.asgi.wrap(app, **{**OPTIONS, **options})


def bare_wsgi_app(**options: Any) -> Any:
    def app(environ: Any, start_response: Any) -> Any:
        status, body = _bare_route(environ["PATH_INFO"])
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [body]

    return fender.wsgi.wrap(app, **{**OPTIONS, **options})


ASGI_APPS = {"fastapi": fastapi_app, "starlette": starlette_app, "bare-asgi": bare_asgi_app}
WSGI_APPS = {"flask": flask_app, "bare-wsgi": bare_wsgi_app}
# Where each flavour names the /items route (frameworks know the template; bare apps do not).
ITEM_ROUTE = {
    "fastapi": "/items/{item_id}",
    "starlette": "/items/{item_id}",
    "flask": "/items/{item_id}",
    "bare-asgi": "/items/7",
    "bare-wsgi": "/items/7",
}
