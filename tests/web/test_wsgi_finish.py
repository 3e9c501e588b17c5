"""A WSGI request is over when its body is exhausted (or dropped), not only when ``close()`` comes.

Flask's test client never closes a response: each request must still be counted in the metrics
and the access log, leave the in-flight gauge, and take its request id out of later log lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, stream_with_context
from prometheus_client import REGISTRY

import fender
from fender.flask import Fender
from fender.observability import _metrics as metrics
from fender.observability._logging import current_request, get_logger
from fender.settings import load_settings
from fender.testing import LogCapture, capture_logs

RID = "finish-test-0001"
log = get_logger("app")


def flask_app(**options: Any) -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"item_id": item_id}

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            log.info("streaming")
            yield "one,"
            log.info("streaming")
            yield "two"

        return Response(stream_with_context(chunks()))

    Fender(app, env="development", **options)
    return app


def duration_count(route: str) -> float:
    metrics.fold()
    labels = {"route": route, "method": "GET", "status_code": "200"}
    return REGISTRY.get_sample_value("http_server_request_duration_seconds_count", labels) or 0.0


def in_flight() -> float:
    metrics.fold()
    return REGISTRY.get_sample_value("http_server_active_requests", {"method": "GET"}) or 0.0


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    with capture_logs(load_settings({"FENDER_ENV": "development"}, env_file=None)) as capture:
        yield capture


def test_a_read_response_is_recorded_without_close(logs):
    client = flask_app().test_client()
    before, active = duration_count("/items/{item_id}"), in_flight()
    response = client.get("/items/3", headers={"X-Request-ID": RID})
    assert response.json == {"item_id": 3}  # the body is read; close() never comes
    (access,) = logs.named("request")
    assert access["request_id"] == RID
    assert access["route"] == "/items/{item_id}"
    assert access["bytes"] == len(response.data)
    assert duration_count("/items/{item_id}") == before + 1
    assert in_flight() == active
    assert current_request() is None


def test_a_response_only_looked_at_for_its_status_is_recorded(logs):
    client = flask_app().test_client()
    before, active = duration_count("/items/{item_id}"), in_flight()
    assert client.get("/items/4").status_code == 200  # the response is dropped unread
    assert len(logs.named("request")) == 1
    assert duration_count("/items/{item_id}") == before + 1
    assert in_flight() == active


def test_a_response_held_unread_is_recorded_once_its_declared_length_is_out(logs):
    client = flask_app().test_client()
    before, active = duration_count("/items/{item_id}"), in_flight()
    response = client.get("/items/6")  # held: neither read to its end nor closed
    assert response.status_code == 200
    (access,) = logs.named("request")
    assert access["bytes"] == int(response.headers["Content-Length"])
    assert duration_count("/items/{item_id}") == before + 1
    assert in_flight() == active
    response.close()
    assert len(logs.named("request")) == 1


def test_a_streamed_response_dropped_unread_is_recorded(logs):
    client = flask_app().test_client()
    assert client.get("/stream").status_code == 200  # no length; dropped after its first chunk
    (access,) = logs.named("request")
    assert access["bytes"] == len(b"one,")


def test_the_request_id_does_not_stick_to_later_lines(logs):
    client = flask_app().test_client()
    response = client.get("/items/5", headers={"X-Request-ID": RID})
    assert response.status_code == 200  # held, unread, unclosed
    assert current_request() is None
    log.info("between requests")
    (between,) = logs.named("between requests")
    assert "request_id" not in between
    response.close()
    assert len(logs.named("request")) == 1


def test_a_streamed_body_logs_with_its_id_and_is_recorded_once(logs):
    client = flask_app().test_client()
    response = client.get("/stream", headers={"X-Request-ID": RID})
    assert response.data == b"one,two"
    assert [e.get("request_id") for e in logs.named("streaming")] == [RID, RID]
    response.close()  # a server's close() after the end records nothing more
    (access,) = logs.named("request")
    assert access["bytes"] == len(b"one,two")
    assert current_request() is None


def test_a_bare_wsgi_body_iterated_to_its_end_is_recorded_once(logs):
    def app(_environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a", b"bc"]

    wrapped = fender.wsgi.wrap(app, env="development")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/plain",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_REQUEST_ID": RID,
    }
    started: list[str] = []
    body = wrapped(environ, lambda status, _headers, _exc=None: started.append(status))
    assert b"".join(body) == b"abc"
    assert started == ["200 OK"]
    (access,) = logs.named("request")
    assert (access["request_id"], access["bytes"]) == (RID, 3)
    body.close()  # type: ignore[attr-defined]
    assert len(logs.named("request")) == 1
    assert current_request() is None


def test_a_body_abandoned_half_way_is_recorded_when_closed(logs):
    """A client gone mid-body: the server stops iterating and closes (PEP 3333)."""
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"first"
            yield b"never sent"

        def close(self) -> None:
            closed.append(True)

    def app(_environ: Any, start_response: Any) -> Body:
        start_response("200 OK", [])
        return Body()

    wrapped = fender.wsgi.wrap(app, env="development")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/half", "REMOTE_ADDR": "127.0.0.1"}
    body = wrapped(environ, lambda *_: None)
    chunks = iter(body)
    assert next(chunks) == b"first"
    assert logs.named("request") == []
    body.close()  # type: ignore[attr-defined]
    (access,) = logs.named("request")
    assert access["bytes"] == len(b"first")
    assert closed == [True]


def test_a_body_whose_close_fails_still_ends_the_response_whole(logs):
    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"complete"

        def close(self) -> None:
            raise OSError("temporary file already gone")

    def app(_environ: Any, start_response: Any) -> Body:
        start_response("200 OK", [("Content-Length", "8")])
        return Body()

    wrapped = fender.wsgi.wrap(app, env="development")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/file",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_REQUEST_ID": RID,
    }
    body = wrapped(environ, lambda *_: None)
    assert list(body) == [b"complete"]  # no exception cutting the finished response
    body.close()  # type: ignore[attr-defined]
    (failure,) = logs.named("unhandled_exception")
    assert failure["request_id"] == RID
    assert "temporary file already gone" in failure["exception"]
    (access,) = logs.named("request")
    assert (access["status"], access["error"]) == (200, "OSError")


def bare(body: Any, headers: list[tuple[str, str]]) -> Any:
    def app(_environ: Any, start_response: Any) -> Any:
        start_response("200 OK", headers)
        return body

    return fender.wsgi.wrap(app, env="development")


ENVIRON = {"REQUEST_METHOD": "GET", "PATH_INFO": "/bare", "REMOTE_ADDR": "127.0.0.1"}


def test_a_body_longer_than_declared_is_handed_on_whole_and_recorded_at_its_end(logs):
    wrapped = bare([b"abc", b"def"], [("Content-Length", "3")])
    body = wrapped(dict(ENVIRON), lambda *_: None)
    chunks = iter(body)
    assert next(chunks) == b"abc"
    assert logs.named("request") == []
    assert list(chunks) == [b"def"]  # the server cuts it; fender does not drop it
    (access,) = logs.named("request")
    assert access["bytes"] == 6


def test_a_body_failing_after_its_declared_length_goes_out_whole(logs):
    def body() -> Iterator[bytes]:
        yield b"whole"
        raise RuntimeError("cleanup after the last byte")

    wrapped = bare(body(), [("Content-Length", "5")])
    assert list(wrapped(dict(ENVIRON), lambda *_: None)) == [b"whole"]
    assert len(logs.named("unhandled_exception")) == 1
    (access,) = logs.named("request")
    assert (access["status"], access["bytes"], access["error"]) == (200, 5, "RuntimeError")
