"""The request path in every flavour: FastAPI, Starlette, Flask, bare ASGI, bare WSGI."""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
import orjson
import pytest

from fender.observability import _metrics as metrics

from apps import ITEM_ROUTE
from conftest import sample

VALID_ID = "req-0123456789.abc_DEF"


def test_a_well_formed_request_id_is_kept_and_echoed(make_client, logs):
    response = make_client().get("/items/7", headers={"X-Request-ID": VALID_ID})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == VALID_ID
    (access,) = logs.named("request")
    assert access["request_id"] == VALID_ID


@pytest.mark.parametrize(
    "bad",
    [
        "short",
        "with space inside it",
        "line\nbreak-injected-id",
        'quote"injection-attempt',
        "x" * 129,
        "x" * 10_000,
    ],
    ids=["too-short", "space", "newline", "quote", "129-chars", "10kB"],
)
def test_a_malformed_request_id_is_replaced(make_client, logs, bad):
    response = make_client().get("/items/7", headers={"X-Request-ID": bad.encode("utf-8")})
    assert response.status_code == 200
    replaced = response.headers["x-request-id"]
    assert replaced != bad
    assert len(replaced) == 32
    int(replaced, 16)
    (access,) = logs.named("request")
    assert access["request_id"] == replaced
    assert all("\n" not in line for line in logs.lines)
    assert bad not in logs.stream.getvalue()


@pytest.mark.parametrize("flavour", ["fastapi", "starlette", "bare-asgi"])
def test_a_non_ascii_request_id_is_replaced(make_client, logs):
    # (WSGI servers hand headers over as latin-1 text; httpx's WSGI transport cannot send them)
    response = make_client().get("/items/7", headers={"X-Request-ID": "ünïcödé-id".encode()})
    assert len(response.headers["x-request-id"]) == 32


def test_a_request_without_id_gets_one(make_client):
    response = make_client().get("/items/7")
    assert len(response.headers["x-request-id"]) == 32


def test_every_log_line_of_a_request_carries_its_id(make_client, logs):
    response = make_client().get("/log", headers={"X-Request-ID": VALID_ID})
    assert response.json() == {"request_id": VALID_ID}
    (handled,) = logs.named("handled")
    assert handled["request_id"] == VALID_ID


def test_the_context_is_gone_after_the_request(make_client, logs):
    from fender import current_request

    make_client().get("/log", headers={"X-Request-ID": VALID_ID})
    assert current_request() is None


def test_traceparent_reaches_the_log_context(make_client, logs):
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    make_client().get("/log", headers={"traceparent": trace})
    (handled,) = logs.named("handled")
    assert handled["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert handled["span_id"] == "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "trace",
    [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ],
)
def test_an_invalid_traceparent_is_ignored(make_client, logs, trace):
    make_client().get("/log", headers={"traceparent": trace})
    (handled,) = logs.named("handled")
    assert "trace_id" not in handled


def test_concurrent_requests_keep_their_own_ids(make_client, flavour, logs):
    """50 requests at once (tasks on one loop for ASGI, threads for WSGI), each sees its id."""
    client = make_client()
    ids = [f"concurrent-{i:04d}" for i in range(50)]
    if client.asgi:

        async def run() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                return await asyncio.gather(
                    *(http.get("/log", headers={"X-Request-ID": rid}) for rid in ids)
                )

        responses = asyncio.run(run())
    else:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            responses = list(
                pool.map(lambda rid: client.get("/log", headers={"X-Request-ID": rid}), ids)
            )
    assert [r.json() for r in responses] == [{"request_id": rid} for rid in ids]
    handled = logs.named("handled")
    assert sorted(e["request_id"] for e in handled) == ids


def test_access_event_fields(make_client, logs, flavour):
    response = make_client().get(
        "/items/7", headers={"User-Agent": "probe/1.0", "X-Request-ID": VALID_ID}
    )
    (access,) = logs.named("request")
    assert access["level"] == "info"
    assert access["logger"] == "fender.access"
    assert access["timestamp"].endswith("Z")
    assert access["method"] == "GET"
    assert access["route"] == ITEM_ROUTE[flavour]
    assert access["status"] == 200
    assert access["duration_ms"] >= 0
    assert access["bytes"] == len(response.content)
    assert access["client"] == "127.0.0.1"
    assert access["user_agent"] == "probe/1.0"


def test_metrics_count_by_route_template(make_client, flavour):
    client = make_client()
    labels = {"route": ITEM_ROUTE[flavour], "method": "GET", "status_code": "200"}
    before = sample("http_server_request_duration_seconds_count", **labels)
    for item in range(3):
        assert client.get("/items/7" if "bare" in flavour else f"/items/{item}").status_code == 200
    assert sample("http_server_request_duration_seconds_count", **labels) == before + 3


def test_a_404_is_unmatched(make_client, logs):
    labels = {"route": "unmatched", "method": "GET", "status_code": "404"}
    before = sample("http_server_request_duration_seconds_count", **labels)
    assert make_client().get("/no/such/path/123").status_code == 404
    assert sample("http_server_request_duration_seconds_count", **labels) == before + 1
    (access,) = logs.named("request")
    assert access["route"] == "unmatched"


@pytest.mark.parametrize("flavour", ["fastapi", "starlette", "flask"])
def test_what_a_router_matched_nothing_for_is_unmatched_whatever_the_status(make_client):
    """Trailing-slash redirects and 405s must not make one series per raw path."""
    client = make_client()
    # paths no other test uses: the registry is the process's
    redirect, other_method = "/items/918273/", "/items/918274"
    statuses = {client.get(redirect).status_code, client.request("PUT", other_method).status_code}
    assert statuses & {301, 307, 308, 405}
    body = metrics.exposition()[0].decode()
    assert f'route="{redirect}"' not in body
    assert f'route="{other_method}"' not in body


def test_an_unknown_method_is_other(make_client):
    before = sum(
        sample(
            "http_server_request_duration_seconds_count", route=r, method="_OTHER", status_code=s
        )
        for r in ("unmatched", "/items/{item_id}", "/items/7")
        for s in ("404", "405", "200")
    )
    make_client().request("BREW", "/items/7")
    after = sum(
        sample(
            "http_server_request_duration_seconds_count", route=r, method="_OTHER", status_code=s
        )
        for r in ("unmatched", "/items/{item_id}", "/items/7")
        for s in ("404", "405", "200")
    )
    assert after == before + 1


def test_a_crash_is_a_json_500_without_details(make_client, logs):
    response = make_client().get("/boom", headers={"X-Request-ID": VALID_ID})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "internal_error", "request_id": VALID_ID}
    assert "secret detail" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"] == VALID_ID


def test_a_crash_is_logged_once_with_traceback_and_request_id(make_client, logs):
    make_client().get("/boom", headers={"X-Request-ID": VALID_ID})
    errors = [e for e in logs.events if e["level"] == "error"]
    assert len(errors) == 1, errors
    (error,) = errors
    assert error["request_id"] == VALID_ID
    assert "RuntimeError: secret detail" in error["exception"]
    (access,) = logs.named("request")
    assert access["status"] == 500


def test_slow_requests_warn_and_count(make_client, logs, flavour):
    client = make_client(slow_request_ms=0.0001)
    labels = {"route": ITEM_ROUTE[flavour], "method": "GET"}
    before = sample("http_server_slow_requests_total", **labels)
    client.get("/items/7")
    (slow,) = logs.named("slow_request")
    assert slow["level"] == "warning"
    assert slow["route"] == ITEM_ROUTE[flavour]
    assert sample("http_server_slow_requests_total", **labels) == before + 1


def test_no_slow_warning_under_the_threshold(make_client, logs):
    make_client(slow_request_ms=60_000).get("/items/7")
    assert logs.named("slow_request") == []


def test_access_log_can_be_switched_off(make_client, logs):
    make_client(access_log=False).get("/items/7")
    assert logs.named("request") == []


def test_metrics_endpoint_text_format(make_client, logs):
    client = make_client()
    client.get("/items/7")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["cache-control"] == "no-store"
    assert "http_server_request_duration_seconds_bucket" in response.text
    assert "app_build_info{" in response.text
    assert logs.named("request") == [e for e in logs.named("request") if e["route"] != "/metrics"]
    assert all(e["route"] != "/metrics" for e in logs.named("request"))


def test_metrics_endpoint_negotiates_openmetrics(make_client):
    response = make_client().get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_metrics_endpoint_methods(make_client):
    client = make_client()
    head = client.request("HEAD", "/metrics")
    assert head.status_code == 200
    assert head.content == b""
    post = client.request("POST", "/metrics")
    assert post.status_code == 405
    assert post.json()["error"] == "method_not_allowed"


def test_metrics_path_is_configurable_and_can_be_off(make_client):
    assert make_client(metrics_path="/internal/metrics").get("/internal/metrics").status_code == 200
    assert make_client(metrics_enabled=False).get("/metrics").status_code == 404


def test_own_endpoints_are_not_logged_by_default(make_client, logs):
    make_client().get("/metrics")
    assert logs.named("request") == []


def test_own_endpoints_can_be_logged(make_client, logs):
    make_client(access_log_own_endpoints=True).get("/metrics")
    (access,) = logs.named("request")
    assert access["route"] == "/metrics"


def test_json_lines_are_valid_json(make_client, logs):
    client = make_client()
    for path in ("/items/1", "/boom", "/log", "/nope"):
        client.get(path)
    for line in logs.lines:
        assert isinstance(orjson.loads(line), dict)


def test_a_lazy_wsgi_app_failing_before_start_response_gets_the_json_500(logs):
    import fender

    def lazy(environ, start_response):
        raise_now = environ["PATH_INFO"] == "/boom"
        if raise_now:
            raise RuntimeError("secret detail")
        start_response("200 OK", [])
        yield b"never"

    from conftest import Client

    client = Client(fender.wsgi.wrap(lazy, env="development", rate_limit_enabled=False), asgi=False)
    response = client.get("/boom", headers={"X-Request-ID": VALID_ID})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "request_id": VALID_ID}
    assert "secret detail" not in response.text


def test_access_event_names_the_client_behind_a_trusted_proxy(make_client, logs, flavour):
    client = make_client(trusted_proxies="127.0.0.1/32")
    client.get("/items/7", headers={"X-Forwarded-For": "198.51.100.7"})
    (access,) = logs.named("request")
    assert access["client"] == "198.51.100.7"


def test_access_event_ignores_forwarding_without_a_trusted_proxy(make_client, logs):
    make_client().get("/items/7", headers={"X-Forwarded-For": "198.51.100.7"})
    (access,) = logs.named("request")
    assert access["client"] == "127.0.0.1"
