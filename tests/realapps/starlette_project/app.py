"""``create_app()``: gunicorn ``'realapps.starlette_project.app:create_app()'``."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router
from starlette.staticfiles import StaticFiles

import fender

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"intro": "Getting started", "api": "The notes API"}
logger = logging.getLogger(__name__)


class ServedBy:
    """Adds ``Served-By`` to every response (a pure ASGI middleware, as Starlette's own)."""

    def __init__(self, app: Any, name: str) -> None:
        self.app = app
        self.header = (b"served-by", name.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


def _notes(request: Request) -> dict[int, dict[str, Any]]:
    return request.app.state.notes


async def homepage(_request: Request) -> Response:
    return PlainTextResponse("notes service")


async def notes(request: Request) -> Response:
    store = _notes(request)
    if request.method == "POST":
        body = await request.json()
        note_id = max(store, default=0) + 1
        store[note_id] = {"id": note_id, "text": body["text"]}
        return JSONResponse(store[note_id], status_code=201)
    return JSONResponse(list(store.values()))


async def note(request: Request) -> Response:
    store = _notes(request)
    note_id = request.path_params["note_id"]
    if note_id not in store:
        raise HTTPException(404, "no such note")
    if request.method == "DELETE":
        del store[note_id]
        return Response(status_code=204)
    logger.info("note %s viewed", note_id)
    return JSONResponse(store[note_id])


async def note_v2(request: Request) -> Response:
    store = _notes(request)
    note_id = request.path_params["note_id"]
    if note_id not in store:
        raise HTTPException(404, "no such note")
    return JSONResponse({"note": store[note_id], "version": 2})


async def docs_home(_request: Request) -> Response:
    links = "".join(
        f'<li><a href="/pages/{slug}">{title}</a></li>' for slug, title in PAGES.items()
    )
    return HTMLResponse(f"<h1>Docs</h1><ul>{links}</ul>")


async def page(request: Request) -> Response:
    slug = request.path_params["slug"]
    if slug not in PAGES:
        raise HTTPException(404, "no such page")
    return HTMLResponse(f"<h1>{PAGES[slug]}</h1>")


def create_app() -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.notes = {1: {"id": 1, "text": "welcome"}}
        yield
        app.state.notes = {}

    api = Router(
        routes=[
            Route("/notes", notes, methods=["GET", "POST"]),
            Route("/notes/{note_id:int}", note, methods=["GET", "DELETE"]),
        ]
    )
    docs = Router(routes=[Route("/", docs_home), Route("/pages/{slug}", page)])
    app = Starlette(
        routes=[
            Host("docs.example.com", app=docs, name="docs"),
            Route("/", homepage),
            Mount("/api", app=api),
            Mount("/v2", routes=[Route("/notes/{note_id:int}", note_v2)]),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(ServedBy, name="notes-1")],
        lifespan=lifespan,
    )
    if os.environ.get("REALAPPS_WITHOUT_FENDER") != "1":
        fender.install(app)
    return app
