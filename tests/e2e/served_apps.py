"""Apps served by real gunicorn processes in the end-to-end tests (module path: served_apps)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from flask import Flask, jsonify

import fender
from fender.flask import Fender


def _record_pid() -> None:
    pidfile = os.environ.get("FENDER_TEST_PIDFILE")
    if pidfile:
        Path(pidfile).write_text(str(os.getpid()))


asgi = FastAPI()


@asgi.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "pass"}


@asgi.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    await asyncio.sleep(0.01)  # a little work, so concurrent requests reach both workers
    return {"item_id": item_id, "pid": os.getpid()}


@asgi.get("/hang")
async def hang() -> dict[str, str]:
    _record_pid()
    await asyncio.sleep(30)
    return {"status": "woke"}


def _gate_open() -> bool:
    """True once the test created ``release`` in its marker folder (or there is no folder)."""
    marker_dir = os.environ.get("FENDER_TEST_MARKERS")
    return not marker_dir or Path(marker_dir, "release").exists()


@asgi.get("/sleep")
async def sleep(seconds: float = 1.0, gated: bool = False) -> dict[str, float]:
    # gated: held until the test opens the gate, then ``seconds`` more (requests in flight for
    # as long as the test needs, however slowly they arrive)
    while gated and not _gate_open():  # noqa: ASYNC110  (a file of another process: polled)
        await asyncio.sleep(0.02)
    await asyncio.sleep(seconds)
    return {"slept": seconds, "pid": os.getpid()}


def _mark(phase: str, kind: str) -> None:
    """Leave ``<phase>-<kind>-<pid>`` in the test's marker folder (startup and shutdown hooks)."""
    marker_dir = os.environ.get("FENDER_TEST_MARKERS")
    if marker_dir:
        Path(marker_dir, f"{phase}-{kind}-{os.getpid()}").write_text(f"{phase} hooks ran")


asgi_runtime = fender.install(asgi)
asgi_runtime.on_startup(lambda: _mark("started", "asgi"))
asgi_runtime.on_shutdown(lambda: _mark("shutdown", "asgi"))

wsgi = Flask(__name__)


@wsgi.get("/health/live")
def wsgi_live() -> Any:
    return jsonify(status="pass")


@wsgi.get("/items/<int:item_id>")
def wsgi_item(item_id: int) -> Any:
    time.sleep(0.01)
    return jsonify(item_id=item_id, pid=os.getpid())


@wsgi.get("/hang")
def wsgi_hang() -> Any:
    _record_pid()
    time.sleep(30)
    return jsonify(status="woke")


@wsgi.get("/sleep")
def wsgi_sleep() -> Any:
    from flask import request

    seconds = float(request.args.get("seconds", "1"))
    while request.args.get("gated") == "true" and not _gate_open():
        time.sleep(0.02)
    time.sleep(seconds)
    return jsonify(slept=seconds, pid=os.getpid())


_wsgi_ext = Fender()
wsgi_runtime = _wsgi_ext.init_app(wsgi)
wsgi_runtime.on_startup(lambda: _mark("started", "wsgi"))
wsgi_runtime.on_shutdown(lambda: _mark("shutdown", "wsgi"))
