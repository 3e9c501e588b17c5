"""The application: ``create_app()`` (gunicorn ``'realapps.fastapi_project.main:create_app()'``,
or ``asgi:app``, which also applies the team's logging config)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import fender
from realapps.fastapi_project.admin import create_admin
from realapps.fastapi_project.api import api_router
from realapps.fastapi_project.store import Store

STATIC = Path(__file__).resolve().parent / "static"


def create_app() -> FastAPI:
    store = Store()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store.is_open = True
        yield
        store.is_open = False

    app = FastAPI(title="fastapi-project", lifespan=lifespan)
    app.state.store = store
    app.include_router(api_router, prefix="/api")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/admin", create_admin(store))

    @app.get("/health")
    async def health() -> dict[str, object]:
        # The app's own health route, as project templates ship one: fender must leave it be.
        return {"status": "ok", "service": "fastapi-project", "store_open": store.is_open}

    if os.environ.get("REALAPPS_WITHOUT_FENDER") != "1":
        fender.install(app)
    return app
