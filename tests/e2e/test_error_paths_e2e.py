"""Real servers, failing apps: fender's JSON 500 instead of the servers' own, one traceback each.

gunicorn (sync worker) serves the WSGI apps, gunicorn with fender's UvicornWorker and plain
uvicorn serve the ASGI apps of ``error_apps``. What only shows on a real server: gunicorn's
HTML 500 and its ``start_response`` appending a failed response's headers to the error's,
uvicorn's text/plain 500, and each server logging a failure fender already logged.
"""

from __future__ import annotations

import concurrent.futures
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from servers import CommandServer, wait_for

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
UVICORN_WORKER = "fender.runtime.uvicorn_worker.UvicornWorker"

pytestmark = pytest.mark.e2e


def _gunicorn(worker: str, app: str) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "-c", "python:fender.runtime.gunicorn_conf",
        "--workers", "1",  # one worker: its log lines come in the order it served requests
        "--worker-class", worker,
        "--bind", "127.0.0.1:{port}",
        "--graceful-timeout", "3",
        app,
    ]  # fmt: skip


def _uvicorn(app: str) -> list[str]:
    return [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}", app]


COMMANDS = {
    "wsgi": _gunicorn("sync", "error_apps:wsgi"),
    "flask": _gunicorn("sync", "error_apps:flask"),
    "asgi": _gunicorn(UVICORN_WORKER, "error_apps:asgi"),
    "fastapi": _gunicorn(UVICORN_WORKER, "error_apps:fastapi"),
    "uvicorn-fastapi": _uvicorn("error_apps:fastapi"),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, CommandServer]]:
    tmp = tmp_path_factory.mktemp("error-paths")
    started = {
        name: CommandServer(
            argv,
            cwd=HERE,
            ready_path="/metrics",
            env={
                "FENDER_ENV": "production",
                "SECRET_KEY": secrets.token_urlsafe(48),
                "FENDER_LOG_FORMAT": "json",
                "FENDER_RATE_LIMIT_ENABLED": "false",
                "FENDER_RUNTIME_DIR": str(tmp / name / "run"),
                "PROMETHEUS_MULTIPROC_DIR": str(tmp / name / "metrics"),
                "PYTHONPATH": str(HERE),
            },
        )
        for name, argv in COMMANDS.items()
    }
    try:
        with concurrent.futures.ThreadPoolExecutor(len(started)) as pool:
            list(pool.map(CommandServer.start, started.values()))
        yield started
    finally:
        for server in started.values():
            server.close()


def events(server: CommandServer) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in server.output().splitlines() if line.startswith("{")]


def request_id() -> str:
    return uuid.uuid4().hex


def get(server: CommandServer, path: str, rid: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers={"X-Request-ID": rid}, timeout=10)


def settle(server: CommandServer) -> list[dict[str, object]]:
    """The log once the server is done with the requests sent so far.

    A server logs a failure after fender recorded the request; one worker serves requests in
    order, so when the access event of a later request is out, so is everything before it.
    """
    rid = request_id()
    assert get(server, "/ok", rid).status_code == 200
    wait_for(
        lambda: any(e.get("request_id") == rid for e in events(server)), 10, "the access event"
    )
    return events(server)


def assert_json_500(response: httpx.Response, rid: str) -> None:
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "request_id": rid}
    names = [name.lower() for name, _ in response.headers.multi_items()]
    assert names.count("content-type") == 1
    assert names.count("x-request-id") == 1
    assert "set-cookie" not in names  # the failed response's header
    assert response.headers["x-request-id"] == rid
    assert response.headers["content-type"] == "application/json"


def access_event(log: list[dict[str, object]], rid: str) -> dict[str, object]:
    (event,) = [e for e in log if e.get("event") == "request" and e.get("request_id") == rid]
    return event


def tracebacks(log: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in log if "exception" in e]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/gen-raises-before-first", "RuntimeError"),
        ("/raise-after-start", "RuntimeError"),
        ("/returns-none", "TypeError"),
        ("/no-start-response", "no_response"),
        ("/empty-lazy", "no_response"),
    ],
)
def test_gunicorn_answers_fenders_json_500_for_a_wsgi_app_failing_before_its_body(
    servers, path, error
):
    server = servers["wsgi"]
    rid = request_id()
    response = get(server, path, rid)
    assert_json_500(response, rid)
    assert "secret detail" not in response.text
    event = access_event(settle(server), rid)
    assert (event["status"], event["error"]) == (500, error)


def test_gunicorn_keeps_the_error_page_a_wsgi_app_chose_itself(servers):
    server = servers["wsgi"]
    response = get(server, "/own-error-page", request_id())
    assert response.status_code == 503
    assert response.text == "the app's own error page"
    assert [n.lower() for n, _ in response.headers.multi_items()].count("content-type") == 1
    assert "set-cookie" not in response.headers


def test_gunicorn_answers_fenders_json_500_for_a_flask_stream_failing_before_its_first_chunk(
    servers,
):
    server = servers["flask"]
    rid = request_id()
    assert_json_500(get(server, "/stream-raise-first", rid), rid)
    event = access_event(settle(server), rid)
    assert (event["route"], event["status"], event["error"]) == (
        "/stream-raise-first",
        500,
        "RuntimeError",
    )


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("wsgi", "/gen-raises-midway"),
        ("flask", "/stream-raise-mid"),
        ("asgi", "/raise-after-start"),
        ("fastapi", "/stream-raise-mid"),
        ("uvicorn-fastapi", "/stream-raise-mid"),
    ],
)
def test_a_failure_midway_through_the_body_is_logged_once_with_the_request_id(servers, name, path):
    server = servers[name]
    before = len(tracebacks(settle(server)))
    rid = request_id()
    with pytest.raises(httpx.HTTPError):  # the server cuts the response: all it can do now
        get(server, path, rid)
    log = settle(server)
    new = tracebacks(log)[before:]
    assert len(new) == 1, [(e.get("logger"), e.get("event")) for e in new]
    (traceback,) = new
    assert traceback["event"] == "unhandled_exception"
    assert traceback["request_id"] == rid
    assert "RuntimeError: secret detail" in str(traceback["exception"])
    event = access_event(log, rid)
    assert (event["status"], event["error"]) == (200, "RuntimeError")


def test_uvicorn_answers_fenders_json_500_for_an_asgi_app_that_sends_nothing(servers):
    server = servers["asgi"]
    rid = request_id()
    assert_json_500(get(server, "/no-response", rid), rid)
    log = settle(server)
    assert access_event(log, rid)["error"] == "no_response"
    (logged,) = [e for e in log if e.get("event") == "no_response"]
    assert logged["request_id"] == rid
    assert logged["level"] == "error"
