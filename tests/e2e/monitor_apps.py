"""Apps whose traffic the monitor e2e tests watch (module path: monitor_apps).

``/items/{item_id}`` answers (with the worker's pid), ``/boom`` fails with a 500 from the app,
``/limited`` is rate limited by the test's FENDER_RATE_LIMIT_PATHS.
"""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import FastAPI
from flask import Flask, jsonify

import fender
from fender.flask import Fender

asgi = FastAPI()


@asgi.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    await asyncio.sleep(0.005)  # a little work, so concurrent requests reach both workers
    return {"item_id": item_id, "pid": os.getpid()}


@asgi.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


@asgi.get("/limited")
async def limited() -> dict[str, bool]:
    return {"ok": True}


fender.install(asgi)

wsgi = Flask(__name__)


@wsgi.get("/items/<int:item_id>")
def flask_item(item_id: int):  # type: ignore[no-untyped-def]
    time.sleep(0.005)
    return jsonify(item_id=item_id, pid=os.getpid())


@wsgi.get("/boom")
def flask_boom():  # type: ignore[no-untyped-def]
    raise RuntimeError("boom")


@wsgi.get("/limited")
def flask_limited():  # type: ignore[no-untyped-def]
    return jsonify(ok=True)


Fender(wsgi)
