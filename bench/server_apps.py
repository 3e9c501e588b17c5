"""The apps bench_server.py serves under real gunicorn: the same route, bare and with fender.

Module path ``server_apps`` (bench/ is put on PYTHONPATH); the app to serve is picked by name:
``server_apps:fastapi_bare``, ``server_apps:fastapi_fender``, ``server_apps:flask_bare``,
``server_apps:flask_fender``, ``server_apps:fastapi_peers``, ``server_apps:flask_peers`` (the
peer stacks of ``_peers.py``). Only the app asked for is built (PEP 562), and a bare app imports
nothing of fender: a worker's resident size is then that of its own app alone.
"""

from __future__ import annotations

from typing import Any

# The apps to serve are attributes built on demand (__getattr__).
__all__ = ["fastapi_app", "flask_app"]


def fastapi_app() -> Any:
    """The bench's FastAPI app: ``GET /items/{item_id}`` answers a small JSON body."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


def flask_app() -> Any:
    """The bench's Flask app: the same route."""
    from flask import Flask

    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"item_id": item_id}

    return app


def _fastapi_fender() -> Any:
    import fender

    app = fastapi_app()
    fender.install(app)  # settings from the environment, as a user's app reads them
    return app


def _flask_fender() -> Any:
    from fender.flask import Fender

    app = flask_app()
    Fender(app)
    return app


def _peers(framework: str) -> Any:
    import sys

    import _peers

    # Limits in memory, JSON lines on stdout, as fender's are.
    if framework == "fastapi":
        ((_name, app),) = _peers.fastapi_peers(fastapi_app, sys.stdout, "memory://", False)
    else:
        ((_name, app),) = _peers.flask_peers(flask_app, sys.stdout, "memory://", False)
    return app


_BUILDERS = {
    "fastapi_bare": fastapi_app,
    "fastapi_fender": _fastapi_fender,
    "flask_bare": flask_app,
    "flask_fender": _flask_fender,
    "fastapi_peers": lambda: _peers("fastapi"),
    "flask_peers": lambda: _peers("flask"),
}


def __getattr__(name: str) -> Any:
    builder = _BUILDERS.get(name)
    if builder is None:
        raise AttributeError(name)
    app = builder()
    globals()[name] = app  # built once
    return app
