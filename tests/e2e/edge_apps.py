"""Apps for the edge's end-to-end tests (module path: edge_apps): each says what it sees."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from flask import Flask, jsonify, request

import fender
from fender.flask import Fender

asgi = FastAPI()


@asgi.get("/who")
async def who(req: Request) -> dict[str, Any]:
    return {
        "client": req.client.host if req.client else None,
        "scheme": req.url.scheme,
        "host": req.headers.get("host"),
    }


fender.install(asgi)

wsgi = Flask(__name__)


@wsgi.get("/who")
def wsgi_who() -> Any:
    return jsonify(client=request.remote_addr, scheme=request.scheme, host=request.host)


Fender(wsgi)
