"""The apps bench_server.py serves under real gunicorn: the same route, bare and with fender.

Module path ``server_apps`` (bench/ is put on PYTHONPATH); the app to serve is picked by name:
``server_apps:fastapi_bare``, ``server_apps:fastapi_fender``, ``server_apps:flask_bare``,
``server_apps:flask_fender``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from flask import Flask

import fender
from fender.flask import Fender


def _fastapi() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


def _flask() -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"item_id": item_id}

    return app


fastapi_bare = _fastapi()
fastapi_fender = _fastapi()
fender.install(fastapi_fender)
flask_bare = _flask()
flask_fender = _flask()
Fender(flask_fender)
