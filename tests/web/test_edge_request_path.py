"""The edge on every flavour: head bounds, proxies, allowed hosts, HTTPS, CORS, probe events.

Each app answers ``who`` (the client, scheme and host the app itself sees) under an included
router or blueprint, a mount, or any path (bare apps), so that a test sees what the app sees.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Request  # module level: FastAPI resolves the endpoint's annotations here

import fender
from fender.testing import LogCapture

OPTIONS: dict[str, Any] = {"env": "development", "log_format": "json"}
PROXY = "10.0.0.2"  # a trusted proxy in these tests
STRANGER = "198.51.100.7"  # a peer that is no proxy of ours


def fastapi_app(**options: Any) -> Any:
    from fastapi import APIRouter, FastAPI
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/who")
    async def who(request: Request) -> dict[str, Any]:
        return _who(request.client.host if request.client else None, request.url.scheme,
                    request.headers.get("host"), str(request.url_for("who")))  # fmt: skip

    @router.post("/who")
    async def post_who(request: Request) -> dict[str, Any]:
        return await who(request)

    app.include_router(router)

    async def mounted(request: Any) -> JSONResponse:
        client = request.client.host if request.client else None
        return JSONResponse(_who(client, request.url.scheme, request.headers.get("host"), ""))

    app.mount("/sub", Starlette(routes=[Route("/who", mounted)]))
    fender.install(app, **{**OPTIONS, **options})
    return app


def flask_app(**options: Any) -> Any:
    from flask import Blueprint, Flask, request, url_for

    from fender.flask import Fender

    def create_app() -> Flask:  # an application factory, with a blueprint
        app = Flask(__name__)
        api = Blueprint("api", __name__, url_prefix="/api")

        @api.route("/who", methods=["GET", "POST"])
        def who() -> Any:
            url = url_for("api.who", _external=True)
            return _who(request.remote_addr, request.scheme, request.host, url)

        app.register_blueprint(api)
        Fender(app, **{**OPTIONS, **options})
        return app

    return create_app()


def bare_asgi_app(**options: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        host = dict(scope["headers"]).get(b"host", b"").decode()
        client = scope["client"][0] if scope.get("client") else None
        body = json.dumps(_who(client, scope["scheme"], host, "")).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    return fender.asgi.wrap(app, **{**OPTIONS, **options})


def bare_wsgi_app(**options: Any) -> Any:
    def app(environ: Any, start_response: Any) -> Any:
        who = _who(environ.get("REMOTE_ADDR"), environ["wsgi.url_scheme"],
                   environ.get("HTTP_HOST"), "")  # fmt: skip
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(who).encode()]

    return fender.wsgi.wrap(app, **{**OPTIONS, **options})


def _who(client: str | None, scheme: str, host: str | None, url: str) -> dict[str, Any]:
    return {"client": client, "scheme": scheme, "host": host, "url": url}


APPS: dict[str, tuple[Callable[..., Any], bool, str]] = {
    "fastapi-router": (fastapi_app, True, "/api/who"),
    "fastapi-mount": (fastapi_app, True, "/sub/who"),
    "flask-blueprint": (flask_app, False, "/api/who"),
    "bare-asgi": (bare_asgi_app, True, "/who"),
    "bare-wsgi": (bare_wsgi_app, False, "/who"),
}


class Edge:
    """One app of a flavour, and requests to it from a chosen peer."""

    def __init__(self, flavour: str, **options: Any) -> None:
        factory, self.asgi, self.who = APPS[flavour]
        self.app = factory(**options)

    def request(self, method: str, path: str, *, peer: str = "127.0.0.1", **kw: Any) -> Any:
        if self.asgi:
            return asyncio.run(self._async(method, path, peer, **kw))
        transport = httpx.WSGITransport(app=self.app, remote_addr=peer)
        with httpx.Client(transport=transport, base_url="http://testserver") as client:
            return client.request(method, path, **kw)

    async def _async(self, method: str, path: str, peer: str, **kw: Any) -> Any:
        transport = httpx.ASGITransport(app=self.app, client=(peer, 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.request(method, path, **kw)


@pytest.fixture(params=list(APPS))
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def events(logs: LogCapture, kind: str) -> list[dict[str, Any]]:
    return [e for e in logs.named("security_event") if e["type"] == kind]


# -- head bounds -----------------------------------------------------------------------------


def test_an_oversized_head_gets_431_json_and_an_event(flavour, logs):
    edge = Edge(flavour, max_header_bytes=4096, max_header_count=20)
    big = edge.request("GET", edge.who, headers={"X-Big": "a" * 5000})
    many = edge.request("GET", edge.who, headers={f"X-H{i}": "1" for i in range(25)})
    fine = edge.request("GET", edge.who, headers={"X-Small": "a" * 1000})
    for response in (big, many):
        assert response.status_code == 431
        assert response.json()["error"] == "headers_too_large"
        assert response.json()["request_id"] == response.headers["x-request-id"]
    assert fine.status_code == 200
    assert len(events(logs, "oversized_header")) == 2
    # the access event covers the edge's answers too
    assert [e["status"] for e in logs.named("request")][:2] == [431, 431]


# -- proxies ---------------------------------------------------------------------------------

SPOOFED = {
    "X-Forwarded-For": "203.0.113.66",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "Forwarded": "for=203.0.113.66;proto=https;host=evil.example",
}


def test_a_trusted_proxys_headers_are_what_the_app_sees(flavour, logs):
    edge = Edge(flavour, trusted_proxies="10.0.0.0/8")
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "shop.example"}  # fmt: skip
    who = edge.request("GET", edge.who, peer=PROXY, headers=headers).json()
    assert (who["client"], who["scheme"], who["host"]) == ("203.0.113.9", "https", "shop.example")
    if who["url"]:  # url_for / url_for(_external=True) build from the effective values
        assert who["url"] == "https://shop.example/api/who"
    assert logs.named("request")[-1]["client"] == "203.0.113.9"


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"], ids=["no-proxies", "other-proxies"])
def test_spoofed_forwarding_from_an_untrusted_peer_changes_nothing(flavour, logs, trusted):
    edge = Edge(flavour, trusted_proxies=trusted, rate_limit="2/minute")
    answers = [
        edge.request("GET", edge.who, peer=STRANGER, headers={**SPOOFED, "X-Forwarded-For": ip})
        for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4")
    ]
    # one bucket: the peer's, whatever X-Forwarded-For says
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    who = answers[0].json()
    assert (who["client"], who["scheme"], who["host"]) == (STRANGER, "http", "testserver")
    assert {e["client"] for e in logs.named("request")} == {STRANGER}
    assert bool(events(logs, "untrusted_proxy_header")) == bool(trusted)


@pytest.mark.parametrize("xff", ["unknown", "0177.0.0.1", "1" * 4000, None])
def test_an_unreadable_chain_from_a_trusted_proxy_counts_as_the_proxy(flavour, logs, xff):
    edge = Edge(flavour, trusted_proxies="10.0.0.0/8", rate_limit="2/minute")
    headers = {} if xff is None else {"X-Forwarded-For": xff}
    statuses = [edge.request("GET", edge.who, peer=PROXY, headers=headers) for _ in range(3)]
    assert [s.status_code for s in statuses] == [200, 200, 429]
    assert statuses[0].json()["client"] == PROXY
    assert bool(events(logs, "malformed_header")) == (xff is not None)


# -- admin by network: unreadable is untrusted, never admin ----------------------------------

# The test client names "testserver": a Host the admin network may use only when allowed.
ADMIN = {
    "trusted_proxies": "127.0.0.1/32",
    "admin_cidrs": "127.0.0.0/8",
    "allowed_hosts": "testserver",
}


@pytest.mark.parametrize("xff", ["unknown", "0177.0.0.1", "1" * 4000, "_hidden", None])
def test_an_unreadable_chain_from_a_trusted_proxy_is_never_admin(flavour, xff):
    edge = Edge(flavour, **ADMIN)
    headers = {} if xff is None else {"X-Forwarded-For": xff}
    assert edge.request("GET", "/status", headers=headers).status_code == 404
    drain = edge.request("POST", "/health/drain", headers={**headers, "X-Requested-With": "x"})
    assert drain.status_code == 404
    # a readable chain naming a client inside the admin network is let in (the control)
    assert edge.request("GET", "/status", headers={"X-Forwarded-For": "127.0.0.9"}).is_success
    assert edge.request("GET", "/status", headers={"X-Forwarded-For": "8.8.8.8"}).status_code == 404


# -- allowed hosts ---------------------------------------------------------------------------


def test_a_host_not_allowed_gets_400_and_probes_keep_working(flavour, logs):
    edge = Edge(flavour, allowed_hosts="api.example.com,*.shop.example")
    assert edge.request("GET", edge.who, headers={"Host": "api.example.com"}).status_code == 200
    assert edge.request("GET", edge.who, headers={"Host": "eu.shop.example:8443"}).is_success
    refused = edge.request("GET", edge.who, headers={"Host": "evil.example"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "disallowed_host"
    assert events(logs, "disallowed_host")[0]["host"] == "evil.example"
    # Kubernetes probes name the pod's address: fender's endpoints answer before the edge
    assert edge.request("GET", "/health/live", headers={"Host": "10.1.2.3:8000"}).is_success


def test_a_forwarded_host_from_a_trusted_proxy_is_the_one_checked(flavour):
    edge = Edge(flavour, allowed_hosts="api.example.com", trusted_proxies="10.0.0.0/8")
    forwarded = {"Host": "internal:8000", "X-Forwarded-Host": "api.example.com",
                 "X-Forwarded-For": "203.0.113.9"}  # fmt: skip
    assert edge.request("GET", edge.who, peer=PROXY, headers=forwarded).status_code == 200
    # the same header from a stranger is ignored: its own Host is judged
    assert edge.request("GET", edge.who, peer=STRANGER, headers=forwarded).status_code == 400


# -- HTTPS -----------------------------------------------------------------------------------

PRODUCTION = {"env": "production", "force_https": True, "trusted_proxies": "10.0.0.0/8"}


def test_plain_http_is_redirected_to_https_in_production(flavour):
    edge = Edge(flavour, **PRODUCTION)
    get = edge.request("GET", f"{edge.who}?a=1&b=%2F", headers={"Host": "api.example.com"})
    assert get.status_code == 301
    assert get.headers["location"] == f"https://api.example.com{edge.who}?a=1&b=%2F"
    post = edge.request("POST", edge.who, headers={"Host": "api.example.com:80"})
    assert post.status_code == 308
    assert post.headers["location"] == f"https://api.example.com{edge.who}"
    # a stranger saying https changes nothing; our proxy saying it does
    assert edge.request("GET", edge.who, peer=STRANGER, headers=SPOOFED).status_code == 301
    behind = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    assert edge.request("GET", edge.who, peer=PROXY, headers=behind).status_code == 200


def test_health_endpoints_and_exempt_prefixes_are_served_over_http(flavour):
    edge = Edge(flavour, **PRODUCTION, https_exempt=edge_prefix(flavour))
    assert edge.request("GET", "/health/live").status_code == 200
    assert edge.request("GET", "/health/ready").status_code in {200, 503}
    assert edge.request("GET", edge.who).status_code == 200  # under the exempt prefix


def edge_prefix(flavour: str) -> str:
    return APPS[flavour][2].rsplit("/", 1)[0] or "/who"


def test_force_https_is_off_in_development_and_says_so(flavour, logs):
    edge = Edge(flavour, force_https=True)
    assert edge.request("GET", edge.who).status_code == 200
    assert logs.named("https_redirect_inactive")


# -- CORS ------------------------------------------------------------------------------------

CORS = {"cors_origins": "https://app.example", "cors_credentials": True}
PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "content-type"}  # fmt: skip


def test_a_preflight_is_answered_by_the_edge(flavour):
    edge = Edge(flavour, **CORS)
    ok = edge.request("OPTIONS", edge.who, headers=PREFLIGHT)
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert ok.headers["access-control-max-age"] == "600"
    assert "Origin" in ok.headers["vary"]
    foreign = edge.request(
        "OPTIONS", edge.who, headers={**PREFLIGHT, "Origin": "https://evil.example"}
    )
    assert foreign.status_code == 400
    assert foreign.json()["error"] == "cors_rejected"
    assert "access-control-allow-origin" not in foreign.headers


def test_an_actual_request_gets_the_cors_headers_and_errors_too(flavour):
    edge = Edge(flavour, **CORS)
    ok = edge.request("GET", edge.who, headers={"Origin": "https://app.example"})
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert "X-Request-ID" in ok.headers["access-control-expose-headers"]
    missing = edge.request("GET", "/nowhere/at-all", headers={"Origin": "https://app.example"})
    assert missing.headers["access-control-allow-origin"] == "https://app.example"
    other = edge.request("GET", edge.who, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    assert other.headers["vary"] == "Origin"


def test_preflights_do_not_count_against_rate_limits(flavour):
    edge = Edge(flavour, **CORS, rate_limit="2/minute")
    for _ in range(5):
        assert edge.request("OPTIONS", edge.who, headers=PREFLIGHT).status_code == 204
    assert [edge.request("GET", edge.who).status_code for _ in range(3)] == [200, 200, 429]


def test_without_cors_origins_fender_adds_no_cors(flavour):
    edge = Edge(flavour)
    response = edge.request("GET", edge.who, headers={"Origin": "https://app.example"})
    assert not [h for h in response.headers if h.startswith("access-control-")]
    assert "vary" not in response.headers


# -- probes ----------------------------------------------------------------------------------


def test_probe_paths_are_observed_not_blocked(flavour, logs):
    edge = Edge(flavour)
    before = edge.request("GET", "/wp-login.php").status_code
    edge.request("GET", "/static/..%2F..%2Fetc/passwd")
    edge.request("GET", edge.who)
    assert before in {200, 404}  # the app's own answer, whatever it is
    assert [e["rule"] for e in events(logs, "probe_path")] == ["wp-login.php", "traversal"]
