"""Failing apps, in process: fender's JSON 500, one log record, an access event that says so.

Also: raw paths of apps without a router stay small and few in the metrics (``path_label``),
and a slow ``/metrics`` render moves off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

import fender
from e2e.failing_wsgi import APP_HEADERS, SECRET, every_failure, fail, fails_before_first
from fender.errors import ConfigurationError
from fender.http import metrics as metrics_endpoint
from fender.http.access import MAX_RAW_PATHS, PATH_LABEL_MAX, Observer, path_label
from fender.http.headers import wsgi_headers
from fender.observability._logging import AccessLog, is_logged, mark_logged
from fender.security import CookiePolicy, SecurityHeaders
from fender.settings import load_settings

from conftest import Client, sample

RID = "req-error-paths-0123"
JSON_500 = {"error": "internal_error", "request_id": RID}
OPTIONS: dict[str, Any] = {"env": "development", "rate_limit_enabled": False}


# -- path_label -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "/", "/items/7", "/" + "a" * (PATH_LABEL_MAX - 1)])
def test_path_label_keeps_a_short_path(path):
    assert path_label(path) == path


@pytest.mark.parametrize("length", [PATH_LABEL_MAX + 1, 1000, 60_000])
def test_path_label_bounds_a_long_path_to_a_prefix_and_a_hash(length):
    path = "/" + "b" * (length - 1)
    label = path_label(path)
    assert len(label) == 81
    assert label.startswith(path[:64] + "~")
    assert all(c in "0123456789abcdef" for c in label[65:])


def test_path_label_is_the_same_in_every_process_and_run():
    # Rate-limit keys are shared by workers through Redis: no per-process hash seed.
    assert path_label("/" + "x" * 200) == "/" + "x" * 63 + "~a633519e2c8c030d"


def test_path_label_hashes_a_short_path_shaped_like_a_label():
    long_path = "/" + "c" * 500
    label = path_label(long_path)
    assert path_label(label) != label  # a client cannot share the long path's label
    assert len(path_label(label)) == 81


def test_path_label_never_fails_on_undecodable_characters():
    assert len(path_label("/\udcff" * 100)) == 81


@given(st.text(max_size=300), st.text(max_size=300))
def test_path_label_is_bounded_and_keeps_distinct_paths_distinct(first, second):
    assert len(path_label(first)) <= PATH_LABEL_MAX
    assert (path_label(first) == path_label(second)) == (first == second)


# -- raw paths in the metrics ---------------------------------------------------------------------


def settings(**env: str) -> Any:
    return load_settings({"FENDER_ENV": "development", **env}, env_file=None)


def test_raw_paths_past_the_cap_count_as_unmatched_and_keep_their_name_in_the_log(logs):
    observer = Observer(settings(), max_raw_paths=2)
    prefix = f"/cap-{uuid.uuid4().hex}"
    unmatched = sample(
        "http_server_request_duration_seconds_count",
        route="unmatched",
        method="GET",
        status_code="200",
    )
    for i in range(4):
        observer.finish(None, "GET", f"{prefix}/{i}", 200, 0.01, 2, None, None, raw_path=True)
    observer.finish(None, "GET", f"{prefix}/0", 200, 0.01, 2, None, None, raw_path=True)
    counts = [
        sample(
            "http_server_request_duration_seconds_count",
            route=f"{prefix}/{i}",
            method="GET",
            status_code="200",
        )
        for i in range(4)
    ]
    assert counts == [2, 1, 0, 0]
    assert (
        sample(
            "http_server_request_duration_seconds_count",
            route="unmatched",
            method="GET",
            status_code="200",
        )
        == unmatched + 2
    )
    assert [e["route"] for e in logs.named("request")] == [f"{prefix}/{i}" for i in (0, 1, 2, 3, 0)]


def test_max_raw_paths_cannot_be_negative():
    with pytest.raises(ConfigurationError, match="max_raw_paths"):
        Observer(settings(), max_raw_paths=-1)


async def _bare_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _bare_wsgi(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


BARE = {
    "bare-asgi": lambda **o: Client(fender.asgi.wrap(_bare_asgi, **OPTIONS, **o), asgi=True),
    "bare-wsgi": lambda **o: Client(fender.wsgi.wrap(_bare_wsgi, **OPTIONS, **o), asgi=False),
}


@pytest.mark.parametrize("flavour", list(BARE))
def test_a_flood_of_long_unique_paths_leaves_the_metrics_small(flavour, logs):
    # Paths longer than the default bound of the request head (431): the bound raised.
    client = BARE[flavour](max_header_bytes=1_048_576)
    before = len(client.get("/metrics").content)
    paths = [f"/flood-{uuid.uuid4().hex}" + "b" * 60_000 for _ in range(30)]
    for path in paths:
        assert client.get(path).status_code == 200
    grown = len(client.get("/metrics").content) - before
    # 30 series of a histogram: about 25 lines each, each line naming its 81-character route.
    # (The raw paths as labels made it 30 x 25 x 60 kB: 45 MB.)
    assert grown < 150_000
    assert [e["route"] for e in logs.named("request")] == [path_label(p) for p in paths]


def counts_by_route(prefix: str) -> dict[str, float]:
    """Request counts of GET 200s by route, for routes starting with ``prefix`` (one pass)."""
    return {
        s.labels["route"]: s.value
        for family in REGISTRY.collect()
        if family.name == "http_server_request_duration_seconds"
        for s in family.samples
        if s.name.endswith("_count")
        and s.labels["route"].startswith(prefix)
        and (s.labels["method"], s.labels["status_code"]) == ("GET", "200")
    }


def get_all(app: Any, paths: list[str], *, asgi: bool) -> None:
    """GET every path through one client."""
    if not asgi:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as http:
            for path in paths:
                http.get(path)
        return

    async def main() -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            for path in paths:
                await http.get(path)

    asyncio.run(main())


@pytest.mark.parametrize("flavour", list(BARE))
def test_a_bare_apps_metrics_name_a_bounded_number_of_raw_paths(flavour):
    client = BARE[flavour]()
    prefix = f"/many-{uuid.uuid4().hex}"
    unmatched = counts_by_route("unmatched").get("unmatched", 0.0)
    get_all(client.app, [f"{prefix}/{i}" for i in range(MAX_RAW_PATHS + 3)], asgi=client.asgi)
    counts = counts_by_route(prefix)
    assert len(counts) == MAX_RAW_PATHS
    assert set(counts.values()) == {1.0}
    assert counts_by_route("unmatched")["unmatched"] == unmatched + 3


def test_a_mounts_path_parameters_stay_parameters_or_are_bounded_in_the_route(logs):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    def build() -> Any:
        return Starlette(routes=[Mount("/t/{tenant}", app=Starlette(routes=[Route("/x", hello)]))])

    app = build()
    fender.install(app, **OPTIONS)
    tenant = "t" * 10_000
    assert Client(app, asgi=True).get(f"/t/{tenant}/x").status_code == 200
    # Without fender's route wrappers (no router it knows of), the raw prefix, bounded.
    wrapped = fender.asgi.wrap(build(), **OPTIONS)
    assert Client(wrapped, asgi=True).get(f"/t/{tenant}/x").status_code == 200
    installed, bare = logs.named("request")
    assert installed["route"] == "/t/{tenant}/x"
    assert bare["route"] in {path_label(f"/t/{tenant}") + "/x", path_label(f"/t/{tenant}/x")}


# -- ASGI: failures -------------------------------------------------------------------------------


def call_asgi(app: Any, path: str) -> tuple[list[dict[str, Any]], BaseException | None]:
    """Drive one request through ``app``; the messages it sent and what it raised."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-request-id", RID.encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        asyncio.run(app(scope, receive, send))
    except Exception as exc:
        return sent, exc
    return sent, None


async def _failing_asgi(scope: Any, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/raise-before-start":
        raise RuntimeError(SECRET)
    if path == "/no-response":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    if path == "/start-only":
        return
    await send({"type": "http.response.body", "body": b"part1", "more_body": True})
    if path == "/raise-midway":
        raise RuntimeError(SECRET)
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def failing_asgi() -> Any:
    return fender.asgi.wrap(_failing_asgi, **OPTIONS)


def assert_asgi_json_500(sent: list[dict[str, Any]]) -> None:
    start, body = sent
    assert start["status"] == 500
    headers = [(k.decode(), v.decode()) for k, v in start["headers"]]
    assert headers.count(("x-request-id", RID)) == 1
    assert ("content-type", "application/json") in headers
    assert orjson.loads(body["body"]) == JSON_500


def test_an_asgi_app_returning_without_a_response_gets_the_json_500(failing_asgi, logs):
    sent, raised = call_asgi(failing_asgi, "/no-response")
    assert raised is None
    assert_asgi_json_500(sent)
    (logged,) = logs.named("no_response")
    assert (logged["level"], logged["request_id"], logged["path"]) == ("error", RID, "/no-response")
    (event,) = logs.named("request")
    assert (event["status"], event["error"], event["bytes"]) == (
        500,
        "no_response",
        len(sent[1]["body"]),
    )


def test_an_asgi_response_started_and_never_finished_is_marked(failing_asgi, logs):
    sent, raised = call_asgi(failing_asgi, "/start-only")
    assert raised is None
    assert [m["type"] for m in sent] == ["http.response.start"]  # the server closes it
    (event,) = logs.named("request")
    assert (event["status"], event["error"]) == (200, "incomplete_response")
    assert [e for e in logs.events if e["level"] == "error"] == []


def test_an_asgi_failure_midway_keeps_the_status_sent_and_names_the_error(failing_asgi, logs):
    sent, raised = call_asgi(failing_asgi, "/raise-midway")
    assert isinstance(raised, RuntimeError)
    assert is_logged(raised)  # the server's own record of it will be dropped
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    (error,) = [e for e in logs.events if e["level"] == "error"]
    assert (error["event"], error["request_id"]) == ("unhandled_exception", RID)
    assert f"RuntimeError: {SECRET}" in error["exception"]
    (event,) = logs.named("request")
    assert (event["status"], event["error"], event["bytes"]) == (200, "RuntimeError", 5)


def test_an_asgi_failure_before_the_response_names_the_error_in_the_access_event(
    failing_asgi, logs
):
    sent, raised = call_asgi(failing_asgi, "/raise-before-start")
    assert raised is None
    assert_asgi_json_500(sent)
    (event,) = logs.named("request")
    assert (event["status"], event["error"]) == (500, "RuntimeError")


def test_a_successful_request_has_no_error_field(failing_asgi, logs):
    _, raised = call_asgi(failing_asgi, "/fine")
    assert raised is None
    (event,) = logs.named("request")
    assert event["status"] == 200
    assert "error" not in event


def test_the_access_event_names_the_error_in_console_mode_too(logs):
    AccessLog(None).request(RID, "GET", "/x", 200, 1.0, 5, None, None, "RuntimeError")
    AccessLog(None).request(RID, "GET", "/x", 200, 1.0, 5, None, None)
    first, second = logs.named("request")
    assert first["error"] == "RuntimeError"
    assert "error" not in second


# -- WSGI: failures -------------------------------------------------------------------------------


class StrictServer:
    """A WSGI server as strict as gunicorn's: ``start_response`` once unless with exc_info,
    headers out at the first write, header values checked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]], bool]] = []
        self.status: str | None = None
        self.headers_sent = False
        self.body = b""

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info:
            if self.status and self.headers_sent:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status is not None:
            raise AssertionError("Response headers already set!")
        self.calls.append((status, list(headers), exc_info is not None))
        self.status = status
        for _, value in headers:
            if "\n" in value:
                raise ValueError("invalid header value")
        return self.write

    def write(self, data: bytes) -> None:
        assert self.status is not None, "a body before start_response"
        self.headers_sent = True
        self.body += data

    def run(self, app: Any, path: str) -> None:
        environ: dict[str, Any] = {
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_X_REQUEST_ID": RID,
        }
        setup_testing_defaults(environ)
        result = app(environ, self.start_response)
        try:
            for chunk in result:
                self.write(chunk)
            self.headers_sent = True
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


@pytest.fixture
def failing_wsgi() -> Any:
    return fender.wsgi.wrap(every_failure, **OPTIONS)


SECURITY = SecurityHeaders(cookies=CookiePolicy())


def sent(app_headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What fender sends of an app's headers: the security headers added, then the request id."""
    headers = wsgi_headers(
        app_headers, SECURITY.default, https=False, nonce=None, cookies=SECURITY.cookies
    )
    return [*headers, ("X-Request-ID", RID)]


# Every response has the security headers, fender's 500s too.
JSON_500_HEADERS = sent([("content-type", "application/json"), ("cache-control", "no-store")])


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/gen-raises-before-first", "RuntimeError"),
        ("/raise-after-start", "RuntimeError"),
        ("/returns-none", "TypeError"),
        ("/start-twice", "AssertionError"),
        ("/no-start-response", "no_response"),
        ("/empty-lazy", "no_response"),
        ("/lazy-without-start", "no_response"),
    ],
)
def test_a_wsgi_app_failing_before_its_body_gets_one_clean_json_500(
    failing_wsgi, logs, path, error
):
    server = StrictServer()
    server.run(failing_wsgi, path)
    # One start_response, no exc_info: none of the failed response's headers can leak into it.
    assert server.calls == [("500 Internal Server Error", JSON_500_HEADERS, False)]
    assert orjson.loads(server.body) == JSON_500
    (logged,) = [e for e in logs.events if e["level"] == "error"]
    assert logged["request_id"] == RID
    assert logged["event"] == ("no_response" if error == "no_response" else "unhandled_exception")
    (event,) = logs.named("request")
    assert (event["status"], event["error"], event["bytes"]) == (500, error, len(server.body))


def test_a_wsgi_failure_midway_goes_to_the_server_once_logged(failing_wsgi, logs):
    server = StrictServer()
    with pytest.raises(RuntimeError) as raised:
        server.run(failing_wsgi, "/gen-raises-midway")
    assert is_logged(raised.value)
    assert server.calls == [("200 OK", sent(APP_HEADERS), False)]
    assert server.body == b"part1"
    (error,) = [e for e in logs.events if e["level"] == "error"]
    assert (error["event"], error["request_id"]) == ("unhandled_exception", RID)
    (event,) = logs.named("request")
    assert (event["status"], event["error"], event["bytes"]) == (200, "RuntimeError", 5)


def test_a_wsgi_app_may_replace_its_response_until_the_body_starts(failing_wsgi, logs):
    server = StrictServer()
    server.run(failing_wsgi, "/own-error-page")
    assert server.calls == [
        ("503 Service Unavailable", sent([("Content-Type", "text/plain")]), False)
    ]
    assert server.body == b"the app's own error page"
    (event,) = logs.named("request")
    assert (event["status"], "error" in event) == (503, False)


def test_exc_info_after_the_body_started_reraises_in_the_app(failing_wsgi, logs):
    server = StrictServer()
    with pytest.raises(ValueError, match=SECRET):
        server.run(failing_wsgi, "/exc-info-after-write")
    assert server.body == b"a"
    assert len(server.calls) == 1
    (event,) = logs.named("request")
    assert (event["status"], event["error"]) == (200, "ValueError")


@pytest.mark.parametrize("path", ["/bad-header", "/bad-header-write"])
def test_an_invalid_header_the_server_refuses_becomes_the_json_500(failing_wsgi, logs, path):
    server = StrictServer()
    server.run(failing_wsgi, path)
    (first_status, _, _), second = server.calls
    assert first_status == "200 OK"
    assert second == ("500 Internal Server Error", JSON_500_HEADERS, True)  # replaces the first
    assert orjson.loads(server.body) == JSON_500
    (event,) = logs.named("request")
    assert (event["status"], event["error"]) == (500, "ValueError")


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/fine", "200 OK", b"ok"),
        ("/write", "200 OK", b"ab"),
        ("/empty-chunks", "200 OK", b"xy"),
        ("/no-content", "204 No Content", b""),
    ],
)
def test_a_wsgi_response_reaches_the_server_whole(failing_wsgi, logs, path, status, body):
    server = StrictServer()
    server.run(failing_wsgi, path)
    ((sent_status, headers, exc_info),) = server.calls
    assert (sent_status, exc_info, server.body) == (status, False, body)
    assert headers[-1] == ("X-Request-ID", RID)
    (event,) = logs.named("request")
    assert (event["status"], event["bytes"], "error" in event) == (
        int(status[:3]),
        len(body),
        False,
    )


@pytest.mark.parametrize(
    "path", ["/fine", "/write", "/no-content", "/gen-raises-before-first", "/empty-lazy"]
)
def test_fenders_wsgi_middleware_passes_the_pep_3333_validator(failing_wsgi, logs, path):
    server = StrictServer()
    server.run(validator(failing_wsgi), path)
    assert len(server.calls) == 1


def test_a_flask_stream_failing_before_its_first_chunk_gets_the_json_500(logs):
    from flask import Flask, Response, stream_with_context

    from fender.flask import Fender

    app = Flask(__name__)

    @app.get("/stream")
    def stream() -> Response:
        return Response(stream_with_context(fails_before_first()), mimetype="text/plain")

    Fender(app, **OPTIONS)
    server = StrictServer()
    server.run(app, "/stream")
    assert server.calls == [("500 Internal Server Error", JSON_500_HEADERS, False)]
    (event,) = logs.named("request")
    assert (event["route"], event["status"], event["error"]) == ("/stream", 500, "RuntimeError")


def test_through_httpx_too(failing_wsgi):
    response = Client(failing_wsgi, asgi=False).get(
        "/gen-raises-before-first", headers={"X-Request-ID": RID}
    )
    assert response.status_code == 500
    assert response.json() == JSON_500
    assert "set-cookie" not in response.headers


# -- logged once ----------------------------------------------------------------------------------


def _raised(exc: BaseException) -> BaseException:
    """``exc``, raised and caught: with a traceback, as a server logs it."""
    try:
        fail(exc)
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


def test_a_servers_record_of_an_exception_fender_logged_is_dropped(logs):
    marked = _raised(RuntimeError(SECRET))
    mark_logged(marked)
    other = _raised(RuntimeError("not logged by fender"))
    logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=marked)
    logging.getLogger("gunicorn.error").error("Error handling request", exc_info=marked)
    logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=other)
    logging.getLogger("app").error("the app's own record", exc_info=marked)
    logging.getLogger("gunicorn.error").error("no exception at all")
    assert [e["event"] for e in logs.events] == [
        "Exception in ASGI application",
        "the app's own record",
        "no exception at all",
    ]
    assert "not logged by fender" in logs.events[0]["exception"]


def test_is_logged_is_false_until_marked():
    exc = RuntimeError("x")
    assert not is_logged(exc)
    assert not is_logged(None)
    mark_logged(exc)
    assert is_logged(exc)


# -- /metrics off the event loop ------------------------------------------------------------------


class _ThreadRecorder:
    """A collector noting which thread each /metrics render ran in."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # (else registering it would collect once)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.threads.append(threading.get_ident())
        yield GaugeMetricFamily("test_render_thread", "which thread rendered", value=1)


@pytest.fixture
def recorder() -> Iterator[_ThreadRecorder]:
    collector = _ThreadRecorder()
    REGISTRY.register(collector)  # type: ignore[arg-type]
    try:
        yield collector
    finally:
        REGISTRY.unregister(collector)  # type: ignore[arg-type]


def scrape_twice(app: Any) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return [await http.get("/metrics"), await http.get("/metrics")]

    return asyncio.run(main())


def test_after_a_slow_render_metrics_render_in_a_thread(recorder, monkeypatch):
    monkeypatch.setattr(metrics_endpoint, "OFFLOAD_RENDER_SECONDS", 0.0)  # every render "slow"
    responses = scrape_twice(fender.asgi.wrap(_bare_asgi, **OPTIONS, metrics_cache_seconds=0))
    assert [r.status_code for r in responses] == [200, 200]
    assert all("test_render_thread 1.0" in r.text for r in responses)
    loop_thread = threading.get_ident()
    assert recorder.threads[0] == loop_thread  # the first render: on the loop
    assert recorder.threads[1] != loop_thread


def test_quick_metrics_renders_stay_on_the_event_loop(recorder, monkeypatch):
    monkeypatch.setattr(metrics_endpoint, "OFFLOAD_RENDER_SECONDS", 60.0)
    scrape_twice(fender.asgi.wrap(_bare_asgi, **OPTIONS, metrics_cache_seconds=0))
    assert recorder.threads == [threading.get_ident()] * 2
