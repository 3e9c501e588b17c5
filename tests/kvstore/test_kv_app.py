"""The store's Flask app over in-memory nodes: endpoints, validation, CP/AP behaviour through
HTTP, read-your-writes tokens, staleness, health, metrics, the index and the OpenAPI document."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from flask import Flask
from prometheus_client import REGISTRY

from examples.kvstore.app import create_app
from examples.kvstore.records import Record
from examples.kvstore.store import KvStore
from examples.kvstore.versions import decode_token, encode_token
from fender.errors import ConfigurationError
from fender.resilience import BreakerRegistry
from fender.testing import ManualClock

from memnode import MemoryNode

ADMIN = "a" * 40
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@dataclasses.dataclass
class Service:
    app: Flask
    client: httpx.Client
    local: MemoryNode
    peer: MemoryNode
    clock: ManualClock
    breaker_clock: ManualClock

    @property
    def store(self) -> KvStore:
        return self.app.extensions["kvstore"]  # type: ignore[no-any-return]

    @property
    def runtime(self) -> Any:
        return self.app.extensions["fender"]

    def ready(self) -> None:
        """Start (first request) and pass the readiness checks once: the process is READY."""
        assert self.client.get("/health/live").status_code == 200
        self.runtime.health.run_sync()
        assert self.client.get("/health/ready").status_code == 200

    def peer_back(self) -> None:
        """The peer answers again, and its breaker is due for a trial call."""
        self.peer.down = False
        self.breaker_clock.advance(60)

    def intents_due(self) -> None:
        """Past the intents' grace: the sync undoes the CP writes left half-done."""
        self.clock.advance(self.store.intent_grace_ms / 1000 + 1)
        self.store.sync_once()


@pytest.fixture
def make() -> Iterator[Callable[..., Service]]:
    apps: list[Flask] = []

    def build(mode: str = "ap", **overrides: Any) -> Service:
        local, peer = MemoryNode("local"), MemoryNode("peer")
        clock, breaker_clock = ManualClock(), ManualClock()
        options: dict[str, Any] = {
            "local": local,
            "peer": peer,
            "mode": mode,
            "breakers": BreakerRegistry(clock=breaker_clock),
            "monotonic": clock,
            "wall_ms": lambda: int(clock() * 1000),
            "testing": True,
            "env": "development",
            "admin_token": ADMIN,
            **overrides,
        }
        app = create_app(**options)
        apps.append(app)
        client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")
        return Service(app, client, local, peer, clock, breaker_clock)

    yield build
    for app in apps:
        app.extensions["fender"].shutdown_sync()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.01)
    return True


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def put(service: Service, key: str, value: str, **kwargs: Any) -> httpx.Response:
    return service.client.put(f"/kv/{key}", json={"value": value}, **kwargs)


# --- happy paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ap", "cp"])
def test_put_get_delete(make, mode):
    service = make(mode)
    written = put(service, "greeting", "héllo wörld")
    assert written.status_code == 200
    body = written.json()
    assert body == {
        "key": "greeting",
        "version": body["version"],
        "replicated": True,
        "mode": mode,
    }
    assert service.local.data["greeting"] == service.peer.data["greeting"]

    read = service.client.get("/kv/greeting")
    assert read.status_code == 200
    assert read.json() == {
        "key": "greeting",
        "value": "héllo wörld",
        "version": body["version"],
        "node": "local",
        "staleness_ms": 0,
        "stale": False,
    }
    assert read.headers["x-data-staleness-ms"] == "0"
    assert "x-data-stale" not in read.headers

    deleted = service.client.delete("/kv/greeting")
    assert deleted.status_code == 200
    assert deleted.json()["version"] > body["version"]
    gone = service.client.get("/kv/greeting")
    assert gone.status_code == 404
    assert gone.json()["error"] == "not_found"
    assert gone.json()["deleted"] is True
    assert service.peer.data["greeting"].deleted  # the tombstone is replicated


def test_missing_key_is_a_json_404(make):
    response = make().client.get("/kv/never")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "not_found",
        "detail": "'never' was never written",
        "key": "never",
        "deleted": False,
        "staleness_ms": 0,
        "stale": False,
    }


def test_the_path_forms_older_clients_use(make):
    service = make()
    # Flask's client: httpx's WSGI transport puts a decoded str in PATH_INFO, where PEP 3333
    # (and gunicorn) put the bytes as latin-1.
    written = service.app.test_client().post("/write/user:42/caf%C3%A9%20au%20lait")
    assert written.status_code == 200
    assert written.json["key"] == "user:42"
    read = service.client.get("/read/user:42")
    assert read.status_code == 200
    assert read.json()["value"] == "café au lait"
    assert service.client.get("/kv/user:42").json()["value"] == "café au lait"


# --- validation -----------------------------------------------------------------------------------

LONG_KEY = "k" * 129


def raw(content: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": content_type} if content_type else {}}


@pytest.mark.parametrize(
    ("sent", "status", "error", "words"),
    [
        (("GET", "/kv/a%20b", {}), 400, "key_invalid", "' ' at position 1"),
        (("GET", "/kv/a%2Cb", {}), 400, "key_invalid", "','"),
        (("GET", "/kv/%2E%2E", {}), 400, "key_invalid", "path segment"),
        (("GET", f"/kv/{LONG_KEY}", {}), 413, "key_too_long", "129 characters"),
        (("DELETE", f"/kv/{LONG_KEY}", {}), 413, "key_too_long", "at most 128"),
        (("GET", f"/read/{LONG_KEY}", {}), 413, "key_too_long", "at most 128"),
        (("PUT", "/kv/a", raw(b"{")), 400, "bad_json", "not JSON"),
        (("PUT", "/kv/a", raw(b"[" * 100_000)), 400, "bad_json", "not JSON"),
        (("PUT", "/kv/a", raw(b"\xff\xfe{")), 400, "bad_json", "not JSON"),
        (("PUT", "/kv/a", {"json": ["x"]}), 400, "bad_body", "JSON object"),
        (("PUT", "/kv/a", {"json": {}}), 400, "value_missing", '"value"'),
        (("PUT", "/kv/a", {"json": {"value": "x", "ttl": 3}}), 400, "bad_body", "'ttl'"),
        (("PUT", "/kv/a", {"json": {"value": ""}}), 400, "value_empty", "empty"),
        (("PUT", "/kv/a", {"json": {"value": 7}}), 400, "value_not_text", "not int"),
        (("PUT", "/kv/a", {"json": {"value": None}}), 400, "value_not_text", "not null"),
        (("PUT", "/kv/a", raw(b'{"value": "\\ud800"}')), 400, "value_not_utf8", "surrogate"),
        (
            ("PUT", "/kv/a", raw(b"hello", "text/plain")),
            415,
            "unsupported_media_type",
            "text/plain",
        ),
        (("PUT", "/kv/a", raw(b'{"value": "x"}', None)), 415, "unsupported_media_type", "untyped"),
        (("PUT", "/kv/a", {"json": {"value": "x" * 65_537}}), 413, "value_too_long", "65537"),
        (("PUT", "/kv/a", raw(b" " * (1 << 20) + b"{}")), 413, "body_too_large", "1048576 bytes"),
        (("PUT", f"/kv/{LONG_KEY}", {"json": {"value": "x"}}), 413, "key_too_long", "128"),
        (("POST", "/write/a/" + "v" * 1025, {}), 413, "value_too_long", "at most 1024"),
        (("POST", "/write/a/%2E", {}), 400, "value_invalid", "PUT /kv/<key>"),
        (("POST", "/write/a%21/v", {}), 400, "key_invalid", "'!'"),
    ],
)
def test_bad_requests_are_json_errors_naming_the_problem(make, sent, status, error, words):
    method, path, kwargs = sent
    service = make()
    response = service.client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    assert words in body["detail"]
    assert service.local.data == {}
    assert service.peer.data == {}


def test_a_path_value_that_is_not_utf8_is_a_400(make):
    service = make()
    # As gunicorn passes %FF: the byte as latin-1 (test clients re-encode it as UTF-8).
    raw = {"PATH_INFO": "/write/a/\xff"}
    response = service.app.test_client().post("/write/a/x", environ_overrides=raw)
    assert response.status_code == 400
    assert response.json["error"] == "value_not_utf8"
    assert service.local.data == {}


def test_unknown_paths_and_methods_are_json(make):
    service = make()
    missing = service.client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = service.client.post("/kv/a")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"
    assert "PUT" in wrong.headers["allow"]


def test_a_node_that_breaks_unexpectedly_is_a_json_500(make):
    service = make()

    def broken(key: str) -> None:
        raise RuntimeError("a bug in a node")

    service.local.get = broken  # type: ignore[method-assign]
    before = sample("app_requests_total", mode="ap", operation="read", status="500")
    response = service.client.get("/kv/a")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "a bug" not in response.text
    assert sample("app_requests_total", mode="ap", operation="read", status="500") == before + 1


# --- CP and AP when the peer is down --------------------------------------------------------------


def test_cp_refuses_a_write_the_peer_cannot_take_and_writes_nothing(make):
    service = make("cp")
    assert put(service, "a", "old").status_code == 200
    service.peer.down = True
    refused = put(service, "a", "new")
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    body = refused.json()
    assert body["error"] == "unavailable"
    assert body["reason"] == "peer_unreachable"
    assert body["mode"] == "cp"
    assert "rolled back" in body["detail"]
    assert "x-kv-token" not in refused.headers
    assert service.local.data["a"].value == "old"  # rolled back
    assert service.peer.data["a"].value == "old"
    # Reads refuse too while the peer is away: CP cannot tell the local node is current.
    assert service.client.get("/kv/a").status_code == 503
    service.peer_back()
    # The peer never took it, and the local node undid it: nothing pending, "old" served.
    assert service.client.get("/kv/a").json()["value"] == "old"


def test_cp_write_whose_reply_was_lost_is_undone_on_both_nodes(make):
    service = make("cp")
    service.peer.lose_reply = True  # the peer applies it, then the reply times out
    assert put(service, "a", "ghost").status_code == 503
    assert "a" not in service.local.data  # taken back here at once
    assert service.peer.data["a"].value == "ghost"
    service.peer.lose_reply = False
    # Pending on the peer (its own intent came with the put) until it falls due: never
    # served, never repaired back. Undone forward there: a tombstone above the refused write.
    assert service.client.get("/kv/a").json()["reason"] == "not_current"
    assert "a" not in service.local.data
    service.intents_due()
    assert service.client.get("/kv/a").status_code == 404
    assert service.peer.data["a"].deleted
    assert service.peer.data["a"] == service.local.data["a"]


def test_cp_write_refused_at_once_while_the_peer_breaker_is_open(make):
    service = make("cp")
    service.peer.down = True
    # Distinct keys: a key whose refused write is still pending refuses at once (in progress).
    for key in "bcd":
        assert put(service, key, "x").json()["reason"] == "peer_unreachable"
    assert put(service, "b", "y").json()["reason"] == "peer_unreachable"  # now: circuit open
    calls = service.local.calls
    refused = put(service, "a", "x")
    assert refused.status_code == 503
    assert "circuit open" in refused.json()["detail"]
    assert service.local.calls == calls  # nothing written, not even locally
    breakers = {b["node"]: b for b in service.client.get("/circuit-breaker").json()["breakers"]}
    assert breakers["peer"]["state"] == "open"
    assert breakers["peer"]["retry_after"] > 0
    assert breakers["local"]["state"] == "closed"


def test_ap_accepts_a_write_while_the_peer_is_down_and_replicates_it_later(make):
    service = make("ap")
    service.peer.down = True
    written = put(service, "a", "v1")
    assert written.status_code == 200
    assert written.json()["replicated"] is False
    assert service.local.data["a"].value == "v1"
    assert "a" not in service.peer.data
    assert service.store.queue_length() == 1
    assert service.client.get("/kv/a").json()["value"] == "v1"

    service.peer_back()
    assert service.store.sync_once() is True
    assert service.peer.data["a"] == service.local.data["a"]
    assert service.store.queue_length() == 0


def test_ap_reads_from_the_peer_while_the_local_node_is_down(make):
    service = make("ap")
    put(service, "a", "v1")
    service.local.down = True
    read = service.client.get("/kv/a")
    assert read.status_code == 200
    assert read.json()["node"] == "peer"
    refused = put(service, "a", "v2")
    assert refused.status_code == 503
    assert refused.json()["reason"] == "local_unreachable"


def test_ap_read_with_no_node_reachable_is_503(make):
    service = make("ap")
    service.local.down = service.peer.down = True
    response = service.client.get("/kv/a")
    assert response.status_code == 503
    assert response.json()["reason"] == "no_node_reachable"
    assert response.headers["retry-after"] == "1"


# --- staleness ------------------------------------------------------------------------------------


def test_ap_read_past_max_staleness_says_stale_in_a_header_and_the_body(make):
    service = make("ap")
    put(service, "a", "v1")
    service.clock.advance(5.001)  # no sync for longer than MAX_STALENESS_MS (5000)
    read = service.client.get("/kv/a")
    assert read.status_code == 200
    assert read.json()["stale"] is True
    assert read.json()["staleness_ms"] == 5001
    assert read.headers["x-data-stale"] == "true"
    assert read.headers["x-data-staleness-ms"] == "5001"
    missing = service.client.get("/kv/b")  # a 404 may be stale too: it says so
    assert missing.json()["stale"] is True
    assert missing.headers["x-data-stale"] == "true"

    assert service.store.sync_once()
    fresh = service.client.get("/kv/a")
    assert fresh.json()["stale"] is False
    assert fresh.json()["staleness_ms"] == 0
    assert "x-data-stale" not in fresh.headers


def test_max_staleness_can_be_set(make):
    service = make("ap", max_staleness_ms=100)
    put(service, "a", "v1")
    service.clock.advance(0.05)
    assert service.client.get("/kv/a").json()["stale"] is False
    service.clock.advance(0.06)
    assert service.client.get("/kv/a").json()["stale"] is True


def test_cp_reads_are_never_stale(make):
    service = make("cp")
    put(service, "a", "v1")
    service.clock.advance(60)
    read = service.client.get("/kv/a")
    assert read.json()["staleness_ms"] == 0
    assert read.json()["stale"] is False


# --- read-your-writes tokens ----------------------------------------------------------------------


def test_a_write_returns_its_token_as_header_and_cookie(make):
    service = make()
    first = put(service, "a", "1")
    second = put(service, "b", "2")  # the client sends the cookie the first write set
    token = second.headers["x-kv-token"]
    assert decode_token(token) == {"a": first.json()["version"], "b": second.json()["version"]}
    cookie = second.headers["set-cookie"]
    assert cookie.startswith(f"kv_token={token};")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # http: a Secure cookie would never come back


def test_a_read_presenting_the_token_is_served_from_a_node_holding_the_write(make):
    service = make("ap")
    put(service, "a", "v1")
    # Another instance's write reached only the peer (this instance's local node lacks it).
    version = service.store.versions.next()
    service.peer.data["a"] = Record("v2", version)
    token = encode_token({"a": version})

    service.client.cookies.clear()
    assert service.client.get("/kv/a").json()["value"] == "v1"  # no token: the local node
    by_header = service.client.get("/kv/a", headers={"X-KV-Token": token})
    assert by_header.json() == {**by_header.json(), "value": "v2", "node": "peer"}
    service.client.cookies.set("kv_token", token)
    assert service.client.get("/kv/a").json()["node"] == "peer"
    # The header wins over the cookie: a token without this key asks for nothing.
    other = encode_token({"b": version})
    assert service.client.get("/kv/a", headers={"X-KV-Token": other}).json()["node"] == "local"


def test_a_read_whose_version_no_reachable_node_holds_is_503(make):
    service = make("ap")
    put(service, "a", "v1")
    token = encode_token({"a": service.store.versions.next()})  # newer than any node holds
    service.peer.down = True
    response = service.client.get("/read/a", headers={"X-KV-Token": token})
    assert response.status_code == 503
    assert response.json()["reason"] == "version_not_available"
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "token",
    [
        "!!not a token!!",
        base64.urlsafe_b64encode("a=²".encode()).decode(),  # a digit int() refuses
        base64.urlsafe_b64encode(b"a=1,=2").decode(),
        "x" * 5000,
    ],
)
def test_a_malformed_token_header_is_a_400_naming_it(make, token):
    service = make()
    response = service.client.get("/kv/a", headers={"X-KV-Token": token})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_token"
    assert "X-KV-Token header" in response.json()["detail"]


def test_a_malformed_token_cookie_is_a_400_that_clears_it(make):
    service = make()

    service.client.cookies.set("kv_token", encode_token({}) + "Zm9vPWJhcg")  # "foo=bar"
    from_cookie = service.client.get("/kv/a")
    assert from_cookie.status_code == 400
    assert "kv_token cookie" in from_cookie.json()["detail"]
    assert from_cookie.headers["set-cookie"].startswith("kv_token=;")  # cleared


def test_a_write_replaces_a_malformed_token(make):
    service = make()
    response = put(service, "a", "v", headers={"X-KV-Token": "%%%"})
    assert response.status_code == 200
    assert decode_token(response.headers["x-kv-token"]) == {"a": response.json()["version"]}


# --- health ---------------------------------------------------------------------------------------


def checks(service: Service) -> dict[str, Any]:
    response = service.client.get("/health/detailed", headers=AUTH)
    return {"status_code": response.status_code, **response.json()}


def test_ap_peer_down_is_degraded_and_still_ready(make):
    service = make("ap")
    service.ready()
    service.peer.down = True
    detailed = checks(service)
    assert detailed["status_code"] == 200
    assert detailed["status"] == "warn"
    peer = detailed["checks"]["kv_peer"]
    assert peer["status"] == "warn"
    assert "degraded" in peer["output"]
    assert detailed["checks"]["kv_local"]["status"] == "pass"
    ready = service.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "warn"


def test_cp_peer_down_fails_readiness(make):
    service = make("cp")
    service.ready()
    service.peer.down = True
    detailed = checks(service)
    assert detailed["status_code"] == 503
    assert detailed["checks"]["kv_peer"]["status"] == "fail"
    ready = service.client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "fail"


@pytest.mark.parametrize("mode", ["ap", "cp"])
def test_local_node_down_fails_readiness(make, mode):
    service = make(mode)
    service.ready()
    service.local.down = True
    detailed = checks(service)
    assert detailed["checks"]["kv_local"]["status"] == "fail"
    assert service.client.get("/health/ready").status_code == 503


# --- metrics --------------------------------------------------------------------------------------


def test_requests_are_counted_and_timed_by_mode_operation_and_status(make):
    service = make("cp")
    labels = {"mode": "cp", "operation": "write", "status": "200"}
    before = sample("app_requests_total", **labels)
    before_503 = sample("app_requests_total", mode="cp", operation="write", status="503")
    before_404 = sample("app_requests_total", mode="cp", operation="read", status="404")
    before_timed = sample("app_request_latency_seconds_count", mode="cp", operation="delete")
    put(service, "a", "v")
    service.client.get("/kv/none")
    service.client.delete("/kv/a")
    service.peer.down = True
    put(service, "a", "v")
    assert sample("app_requests_total", **labels) == before + 1
    assert sample("app_requests_total", mode="cp", operation="write", status="503") > before_503
    assert sample("app_requests_total", mode="cp", operation="read", status="404") > before_404
    assert (
        sample("app_request_latency_seconds_count", mode="cp", operation="delete")
        == before_timed + 1
    )
    text = service.client.get("/metrics").text
    assert 'app_requests_total{mode="cp",operation="write",status="503"}' in text
    assert 'app_request_latency_seconds_bucket{le="0.001",mode="cp",operation="read"}' in text
    assert 'db_connection_failures_total{node="peer"}' in text


# --- index, breakers, OpenAPI ---------------------------------------------------------------------


def test_index_for_clients_is_json_listing_every_endpoint(make):
    service = make("cp")
    response = service.client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "cp"
    # The index is public: each node's kind and state, never its address.
    assert body["nodes"] == {
        "local": {"kind": "memory", "state": "closed"},
        "peer": {"kind": "memory", "state": "closed"},
    }
    assert "memory://" not in service.client.get("/", headers={"accept": "text/html"}).text
    assert "memory://" not in service.client.get("/circuit-breaker").text
    listed = {(e["method"], e["path"]) for e in body["endpoints"]}
    for endpoint in [
        ("GET", "/"),
        ("PUT", "/kv/{key}"),
        ("GET", "/kv/{key}"),
        ("DELETE", "/kv/{key}"),
        ("POST", "/write/{key}/{value}"),
        ("GET", "/read/{key}"),
        ("GET", "/circuit-breaker"),
        ("GET", "/openapi.json"),
        ("GET", "/health"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/health/detailed"),
        ("GET", "/status"),
        ("GET", "/metrics"),
    ]:
        assert endpoint in listed
    paths = [e["path"] for e in body["endpoints"]]
    assert paths.count("/circuit-breaker") == 1  # the store's own: fender yields its path
    assert all(e["description"] for e in body["endpoints"])
    assert response.headers["vary"] == "Accept"


def test_index_for_browsers_is_html_without_inline_script_or_style(make):
    response = make("ap").client.get("/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for path in ["/health", "/health/ready", "/metrics", "/status", "/circuit-breaker"]:
        assert f'<a href="{path}">' in page
    assert "/openapi.json" in page
    assert "PUT" in page
    assert "<code>/kv/{key}</code>" in page
    assert "Mode AP" in page
    lowered = page.lower()
    assert "<script" not in lowered
    assert "<style" not in lowered
    assert " style=" not in lowered
    assert not re.search(r"\son[a-z]+\s*=", lowered)  # no inline event handlers
    assert '<link rel="stylesheet" href="/status/style.css">' in page
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp


def test_circuit_breaker_lists_both_nodes_and_the_store(make):
    service = make("ap")
    body = service.client.get("/circuit-breaker").json()
    assert body["mode"] == "ap"
    assert [(b["node"], b["name"], b["state"]) for b in body["breakers"]] == [
        ("local", "kv-local", "closed"),
        ("peer", "kv-peer", "closed"),
    ]
    assert {"calls", "failure_rate", "retry_after", "consecutive_failures"} <= set(
        body["breakers"][0]
    )
    assert body["store"]["mode"] == "ap"
    assert body["store"]["max_staleness_ms"] == 5000
    assert set(body["store"]["nodes"]) == {"local", "peer"}


def test_openapi_document_is_valid_and_describes_every_route(make):
    service = make()
    document = service.client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(document)))
    schema.validate()
    operations = [result.ok() for result in schema.get_all_operations()]
    described = {(op.method.upper(), op.path) for op in operations}
    routes = {
        (method, rule.rule.replace("<", "{").replace(">", "}"))
        for rule in service.app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    assert described == routes


def test_answers_match_the_openapi_document(make):
    service = make("ap")
    schema = schemathesis.openapi.from_dict(service.client.get("/openapi.json").json())
    client = service.client

    def check(method: str, path: str, response: httpx.Response) -> None:
        operation = schema[path][method]
        assert operation.validate_response(response) is not False

    check("PUT", "/kv/{key}", put(service, "a", "v"))
    check("PUT", "/kv/{key}", client.put("/kv/a", json={"value": ""}))
    check("PUT", "/kv/{key}", client.put("/kv/a", content=b"x"))
    check("GET", "/kv/{key}", client.get("/kv/a"))
    check("GET", "/kv/{key}", client.get("/kv/none"))
    check("GET", "/read/{key}", client.get("/read/a"))
    check("POST", "/write/{key}/{value}", client.post("/write/b/v"))
    check("DELETE", "/kv/{key}", client.delete("/kv/a"))
    check("GET", "/", client.get("/"))
    check("GET", "/circuit-breaker", client.get("/circuit-breaker"))
    check("GET", "/openapi.json", client.get("/openapi.json"))
    service.local.down = service.peer.down = True
    check("GET", "/kv/{key}", client.get("/kv/a"))
    check("PUT", "/kv/{key}", put(service, "a", "v"))


# --- settings and lifecycle -----------------------------------------------------------------------


def test_a_bad_mode_fails_at_start_naming_the_variable(monkeypatch):
    monkeypatch.setenv("KV_MODE", "xyz")
    with pytest.raises(ConfigurationError, match=r"KV_MODE='xyz' is invalid: expected cp \| ap"):
        create_app(local=MemoryNode("local"), peer=MemoryNode("peer"), env="development")


def test_nodes_must_have_their_roles_names(make):
    with pytest.raises(ConfigurationError, match=r"local\.name"):
        make(local=MemoryNode("peer"))


def test_the_mode_comes_from_the_environment(make, monkeypatch):
    monkeypatch.setenv("KV_MODE", "CP")
    assert make(mode=None).store.mode == "cp"


def test_the_sync_runs_in_each_worker_from_its_first_request_until_shutdown(make):
    def syncing() -> bool:
        return any(t.name == "kv-sync" and t.is_alive() for t in threading.enumerate())

    service = make("ap", start_sync=True, sync_interval=0.01)
    assert not syncing()  # not when the app is built (gunicorn may fork it)
    service.peer.down = True
    assert put(service, "a", "v").status_code == 200
    assert syncing()
    service.peer_back()
    assert wait_for(lambda: "a" in service.peer.data)  # the sync replays the hint by itself
    service.runtime.shutdown_sync()
    assert not syncing()


def test_the_module_builds_its_app_only_when_asked():
    import examples.kvstore.app as module

    assert "_app" in vars(module)
    assert module._app is None
    with pytest.raises(AttributeError):
        module.__getattr__("other")
