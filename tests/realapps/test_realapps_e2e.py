"""The FastAPI and the Flask project served by real gunicorn with fender's config module.

``gunicorn -c python:fender.runtime.gunicorn_conf`` as the README says, one worker (the
login limit is counted in the worker's memory without REDIS_URL), production settings. What
a test in process cannot see: the server's own loggers (uvicorn's access lines, which the
FastAPI project's logging config turns back on), and the app loaded as deployed.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
from werkzeug.security import generate_password_hash

from realapps.checks import json_line, production_environment, read_counts
from realapps.flask_project.auth import HASH_METHOD
from realapps.flask_project.db import SCHEMA

from servers import CommandServer, wait_for

pytestmark = pytest.mark.e2e

TESTS = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
API_KEY = {"X-API-Key": "test-api-key"}

SERVED = {
    "fastapi": ["realapps.fastapi_project.asgi:app"],
    "flask": ["-k", "gthread", "--threads", "4", "realapps.flask_project.wsgi:app"],
}
# The request whose lines are counted, and what the app logs while answering it.
ITEM = {"path": "/api/v1/items/7", "route": "/api/v1/items/{item_id}", "message": "item 7 viewed"}


def gunicorn(name: str, tmp_path: Path) -> CommandServer:
    environment = production_environment(tmp_path)
    environment.update(
        PYTHONPATH=str(TESTS),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        FENDER_RATE_LIMIT="100/minute burst 200",
        FENDER_SERVER_ACCESS_LOG="false",
    )
    return CommandServer(
        [
            str(BIN / "gunicorn"),
            "-c", "python:fender.runtime.gunicorn_conf",
            "--workers", "1",
            "--bind", "127.0.0.1:{port}",
            *SERVED[name],
        ],
        cwd=tmp_path,
        ready_path="/health/ready",
        env=environment,
    )  # fmt: skip


def seed_flask_database(path: str) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        db.execute(
            "INSERT INTO user (username, password) VALUES ('alice', ?)",
            (generate_password_hash("wonderland", method=HASH_METHOD),),
        )
        db.execute("INSERT INTO post (title, body, author_id) VALUES ('first', 'body', 1)")


def use_fastapi(client: httpx.Client) -> dict[str, str]:
    """Every kind of route once; returns template -> the status it answered."""
    assert client.put(ITEM["path"], json={"name": "desk", "price": 120.0}).status_code == 200
    assert client.get(ITEM["path"]).json() == {"name": "desk", "price": 120.0}
    user = client.post("/api/v1/users", json={"name": "Ada", "email": "a@x.org"}, headers=API_KEY)
    assert user.status_code == 201
    user_id = user.json()["id"]
    assert client.get(f"/api/v1/users/{user_id}", headers=API_KEY).status_code == 200
    assert client.get(f"/api/v2/users/{user_id}", headers=API_KEY).status_code == 200
    assert client.get("/api/v1/users").status_code == 401
    assert client.get("/static/hello.txt").text == "hello from static\n"
    assert client.get("/admin/stats").json() == {"users": 1, "items": 1}
    assert client.get("/docs").status_code == 200
    own = client.get("/health")
    assert own.json() == {"status": "ok", "service": "fastapi-project", "store_open": True}
    return {
        "/api/v1/items/{item_id}": "200",
        "/api/v1/users": "201",
        "/api/v1/users/{user_id}": "200",
        "/api/v2/users/{user_id}": "200",
        "/static/{path}": "200",
        "/admin/stats": "200",
        "/docs": "200",
        "/health": "200",
    }


def use_flask(client: httpx.Client) -> dict[str, str]:
    assert client.get(ITEM["path"]).json() == {"name": "desk", "price": 120.0}
    assert client.get("/blog/").json()[0]["title"] == "first"
    assert client.get("/blog/1").json()["title"] == "first"
    assert client.post("/blog/", data={"title": "x"}).status_code == 401
    assert "color" in client.get("/static/style.css").text
    assert client.get("/status").json() == {"status": "ok", "app": "flask-project"}
    return {
        "/api/v1/items/{item_id}": "200",
        "/blog/": "401",
        "/blog/{id}": "200",
        "/static/{filename}": "200",
        "/status": "200",
    }


LOGINS = {
    "fastapi": ("/api/v1/login", {"json": {"username": "alice", "password": "guess"}}),
    "flask": ("/auth/login", {"data": {"username": "alice", "password": "guess"}}),
}


@pytest.mark.parametrize("name", list(SERVED))
def test_served_by_gunicorn(name, tmp_path):
    if name == "flask":
        seed_flask_database(production_environment(tmp_path)["FLASK_DATABASE"])
    server = gunicorn(name, tmp_path)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            wait_for(lambda: client.get("/health/ready").status_code == 200, 60, f"{name} ready")
            expected = use_fastapi(client) if name == "fastapi" else use_flask(client)

            path, options = LOGINS[name]
            for _ in range(5):
                assert client.post(path, **options).status_code == 401
            rejected = client.post(path, **options)
            assert rejected.status_code == 429, rejected.text
            assert int(rejected.headers["retry-after"]) >= 1

            counts = read_counts(client.get("/metrics").text)
        labelled = {(route, status) for (route, _method, status) in counts}
        for template, status in expected.items():
            assert (template, status) in labelled, (template, sorted(labelled))
        assert (path, "429") in labelled
        assert not {route for route, _ in labelled} & {"unmatched", "/users/{user_id}"}

        def item_logged() -> bool:
            return ITEM["message"] in server.output()

        wait_for(item_logged, 30, "the app's log line")
    finally:
        code = server.terminate()
        output = server.output()
        server.close()
    assert code == 0, output[-3000:]

    lines = output.splitlines()
    # One line per event: the app's line once, one access event, no server access line.
    assert len([line for line in lines if ITEM["message"] in line]) == 1, output[-5000:]
    access = [
        event
        for event in map(json_line, lines)
        if event
        and event.get("event") == "request"
        and event.get("route") == ITEM["route"]
        and event.get("method") == "GET"
    ]
    assert len(access) == 1, output[-5000:]
    assert not [line for line in lines if f"{ITEM['path']} HTTP/1.1" in line], output[-5000:]
    # One format: every line the service printed is a JSON event.
    assert [line for line in lines if line.strip() and json_line(line) is None] == []
