"""Build one corpus app as its deployment does and serve it one request, in this process.

``python -m realapps.drive fastapi`` (from ``tests/``): the tests that count the lines a
process prints run this in a child process, where nothing of pytest's logging or capture is in
the way. Each app answers ``GET <PATHS[name]>`` and logs ``"<thing> 7 viewed"`` while doing so.
"""

from __future__ import annotations

import logging
import sys
import warnings

import httpx

PATHS = {
    "fastapi": "/api/v1/items/7",
    "starlette": "/api/notes/7",
    "flask": "/api/v1/items/7",
    "django": "/polls/7/",
}
MESSAGES = {
    "fastapi": "item 7 viewed",
    "starlette": "note 7 viewed",
    "flask": "item 7 viewed",
    "django": "poll 7 viewed",
}


def _asgi(name: str) -> int:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
        from starlette.testclient import TestClient
    if name == "fastapi":
        from realapps.fastapi_project.asgi import app

        app.state.store.items[7] = {"name": "desk", "price": 120.0}
    else:
        from realapps.starlette_project.app import create_app

        app = create_app()
    with TestClient(app) as client:
        if name == "starlette":
            app.state.notes[7] = {"id": 7, "text": "seven"}
        return client.get(PATHS[name]).status_code


def _wsgi(name: str) -> int:
    if name == "flask":
        from realapps.flask_project.wsgi import app
    else:
        from realapps.django_project.wsgi import get_application

        app = get_application()
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        return client.get(PATHS[name]).status_code


def main(name: str) -> int:
    # The test client's own line per request ("HTTP Request: GET ..."), absent when served.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    status = _asgi(name) if name in ("fastapi", "starlette") else _wsgi(name)
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
