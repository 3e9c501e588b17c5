"""Rate limiting over HTTP, in process, for FastAPI, Starlette, Flask, bare ASGI and bare WSGI."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import fender
from fender._clock import ManualClock
from fender.errors import ConfigurationError
from fender.frameworks.flask import apply_to_flask
from fender.frameworks.starlette import apply_to_starlette
from fender.http.ratelimit import HttpRateLimit, rate_limit
from fender.middleware.asgi.ratelimit import RateLimitMiddleware
from fender.middleware.wsgi.ratelimit import RateLimitWSGI
from fender.ratelimit._config import RateLimitConfig, parse_paths
from fender.ratelimit._policy import parse_policy
from fender.ratelimit._tiered import AsyncTieredLimiter, TieredLimiter
from fender.ratelimit._tiers import Tier

from servers import free_port

# install() limits every route from the settings; these apps test hand-built configurations,
# so fender's own limiter is off and the test's limiter is applied on top.
OPTIONS = {"env": "development", "rate_limit_enabled": False}
FRAMEWORKS = ["fastapi", "starlette", "flask"]
FLAVOURS = [*FRAMEWORKS, "bare-asgi", "bare-wsgi"]


def make_config(**fields: Any) -> RateLimitConfig:
    base: dict[str, Any] = {
        "default": parse_policy("3/minute"),
        "paths": parse_paths("/search=4/minute|/login=50/minute"),
        "exempt": ("/static",),
        "allow": ("192.0.2.0/24",),
    }
    base.update(fields)
    return RateLimitConfig(**base)


def user_of(request) -> str | None:
    return request.headers.get("x-user")


# -- the same service in every flavour -------------------------------------------------------------


def fastapi_app(limiter, config):
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/search")
    async def search() -> dict[str, str]:
        return {}

    @app.post("/login")
    @rate_limit("2/minute")
    async def login() -> dict[str, str]:
        return {}

    @app.get("/static/app.js")
    async def static() -> dict[str, str]:
        return {}

    @rate_limit("5/minute", key="global", name="all")
    @rate_limit("3/minute", name="each")
    @app.get("/stacked")
    async def stacked() -> dict[str, str]:
        return {}

    @app.get("/me")
    @rate_limit("2/minute", key="user")
    async def me() -> dict[str, str]:
        return {}

    @app.get("/broken")
    @rate_limit("2/minute", key=lambda _request: str(1 / 0))
    async def broken() -> dict[str, str]:
        return {}

    fender.install(app, **OPTIONS)
    apply_to_starlette(app, limiter, config)
    return app


def starlette_app(limiter, config):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    async def ok(request: Any) -> JSONResponse:
        return JSONResponse({})

    @rate_limit("2/minute")
    async def login(request: Any) -> JSONResponse:
        return JSONResponse({})

    @rate_limit("5/minute", key="global", name="all")
    @rate_limit("3/minute", name="each")
    async def stacked(request: Any) -> JSONResponse:
        return JSONResponse({})

    @rate_limit("2/minute", key="user")
    async def me(request: Any) -> JSONResponse:
        return JSONResponse({})

    @rate_limit("2/minute", key=lambda _request: str(1 / 0))
    async def broken(request: Any) -> JSONResponse:
        return JSONResponse({})

    inner = [Route("/things/{thing_id:int}", ok)]
    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", ok),
            Route("/search", ok),
            Route("/login", login, methods=["POST"]),
            Route("/static/app.js", ok),
            Route("/stacked", stacked),
            Route("/me", me),
            Route("/broken", broken),
            Mount("/sub", routes=inner),
        ]
    )
    fender.install(app, **OPTIONS)
    apply_to_starlette(app, limiter, config)
    return app


def flask_app(limiter, config):
    from flask import Flask, jsonify

    from fender.flask import Fender

    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return jsonify(item_id=item_id)

    @app.get("/search")
    def search() -> Any:
        return jsonify()

    @app.post("/login")
    @rate_limit("2/minute")
    def login() -> Any:
        return jsonify()

    @app.get("/static/app.js")
    def static_file() -> Any:
        return jsonify()

    @app.get("/stacked")
    @rate_limit("5/minute", key="global", name="all")
    @rate_limit("3/minute", name="each")
    def stacked() -> Any:
        return jsonify()

    @app.get("/me")
    @rate_limit("2/minute", key="user")
    def me() -> Any:
        return jsonify()

    @app.get("/broken")
    @rate_limit("2/minute", key=lambda _request: str(1 / 0))
    def broken() -> Any:
        return jsonify()

    Fender(app, **OPTIONS)
    apply_to_flask(app, limiter, config)
    return app


def _bare_status(path: str) -> int:
    known = path.startswith(("/items/", "/sub/")) or path in {"/search", "/login", "/static/app.js"}
    return 200 if known else 404


def bare_asgi_app(limiter, config):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        status = _bare_status(scope["path"])
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    return fender.asgi.wrap(RateLimitMiddleware(app, limiter, config), **OPTIONS)


def bare_wsgi_app(limiter, config):
    def app(environ: Any, start_response: Any) -> Any:
        status = _bare_status(environ["PATH_INFO"])
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [b"{}"]

    return fender.wsgi.wrap(RateLimitWSGI(app, limiter, config), **OPTIONS)


BUILDERS = {
    "fastapi": (fastapi_app, True),
    "starlette": (starlette_app, True),
    "flask": (flask_app, False),
    "bare-asgi": (bare_asgi_app, True),
    "bare-wsgi": (bare_wsgi_app, False),
}


@dataclass
class Service:
    app: Any
    asgi: bool
    clock: ManualClock
    limiter: Any

    def request(self, method: str, path: str, *, ip: str = "10.0.0.1", **kwargs) -> httpx.Response:
        if self.asgi:
            return asyncio.run(self._async(method, path, ip, **kwargs))
        transport = httpx.WSGITransport(app=self.app, remote_addr=ip)
        with httpx.Client(transport=transport, base_url="http://testserver") as client:
            return client.request(method, path, **kwargs)

    async def _async(self, method: str, path: str, ip: str, **kwargs) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, path, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def statuses(self, path: str, n: int, method: str = "GET", **kwargs) -> list[int]:
        return [self.request(method, path, **kwargs).status_code for _ in range(n)]


def build(flavour: str, url: str = "", **fields: Any) -> Service:
    factory, asgi = BUILDERS[flavour]
    clock = ManualClock()
    config = make_config(redis_url=url, **fields)
    limiter_class = AsyncTieredLimiter if asgi else TieredLimiter
    limiter = limiter_class(config, clock=clock)
    return Service(factory(limiter, config), asgi, clock, limiter)


@pytest.fixture(params=FLAVOURS)
def flavour(request) -> str:
    return request.param


@pytest.fixture(params=FRAMEWORKS)
def framework(request) -> str:
    return request.param


# -- limits, headers, Retry-After ------------------------------------------------------------------


def test_headers_on_200_and_429_and_an_accurate_retry_after(flavour):
    service = build(flavour)
    first = service.get("/items/1")
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert first.headers["ratelimit"] == '"default";r=2;t=20'
    assert "x-ratelimit-limit" not in first.headers
    assert [service.get("/items/1").headers["ratelimit"] for _ in range(2)] == [
        '"default";r=1;t=40',
        '"default";r=0;t=60',
    ]
    rejected = service.get("/items/1")
    assert rejected.status_code == 429
    assert rejected.headers["retry-after"] == "20"
    assert rejected.headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert rejected.headers["ratelimit"] == '"default";r=0;t=60'
    body = rejected.json()
    assert body == {"error": "rate_limited", "request_id": body["request_id"], "retry_after": 20}
    assert body["request_id"] == rejected.headers["x-request-id"]
    service.clock.advance(19.5)
    late = service.get("/items/1")
    assert (late.status_code, late.headers["retry-after"]) == (429, "1")
    service.clock.advance(0.5)
    assert service.get("/items/1").status_code == 200


def test_limits_are_per_client_ip_and_route(flavour):
    service = build(flavour)
    assert service.statuses("/items/1", 4) == [200, 200, 200, 429]
    assert service.statuses("/items/1", 1, ip="10.0.0.2") == [200]
    # Same template, other path values: the same route, the same budget. An app without a
    # router has only raw paths: its default is one budget per client across them.
    assert service.statuses("/items/2", 1) == [429]


@pytest.mark.parametrize("flavour", ["bare-asgi", "bare-wsgi"])
def test_walking_ids_of_an_app_without_a_router_hits_the_default(flavour):
    service = build(flavour)
    assert [service.get(f"/items/{n}").status_code for n in range(4)] == [200, 200, 200, 429]
    assert service.statuses("/sub/anything", 1) == [429]
    # A path-table entry keeps its own budget, per path.
    assert service.statuses("/search", 5) == [200, 200, 200, 200, 429]
    assert service.statuses("/items/9", 1, ip="10.0.0.2") == [200]


@pytest.mark.parametrize("flavour", ["bare-asgi", "bare-wsgi"])
def test_a_path_entry_written_with_a_trailing_slash_applies_to_raw_paths(flavour):
    # As Django writes its paths: /accounts/login/ (raw paths are looked up without it).
    service = build(flavour, paths=parse_paths("/accounts/login/=2/minute"))
    # (the test app answers 404 there; the default, 3/minute, would admit the third)
    assert service.statuses("/accounts/login/", 3, method="POST") == [404, 404, 429]


def test_mounted_routes_are_known_by_their_prefixed_template():
    service = build("starlette", paths=parse_paths("/sub/things/{thing_id}=1/minute"))
    response = service.get("/sub/things/1")
    assert response.headers["ratelimit-policy"] == '"/sub/things/thing_id";q=1;w=60'
    assert service.statuses("/sub/things/2", 1) == [429]


def test_the_path_table_overrides_the_default(flavour):
    service = build(flavour)
    assert service.statuses("/search", 5) == [200, 200, 200, 200, 429]
    assert service.get("/search").headers["ratelimit-policy"] == '"/search";q=4;w=60'


def test_a_decorator_beats_the_path_table_and_the_default(framework):
    service = build(framework)
    assert service.statuses("/login", 3, method="POST") == [200, 200, 429]
    response = service.request("POST", "/login")
    assert response.headers["ratelimit-policy"] == '"/login";q=2;w=60'


def test_stacked_decorators_apply_together(framework):
    service = build(framework)
    response = service.get("/stacked")
    assert response.headers["ratelimit-policy"] == '"all";q=5;w=60, "each";q=3;w=60'  # as written
    assert service.statuses("/stacked", 2) == [200, 200]
    assert service.statuses("/stacked", 2, ip="10.0.0.2") == [200, 200]
    rejected = service.get("/stacked", ip="10.0.0.3")  # "all" is global: 5 used up
    assert rejected.status_code == 429
    assert rejected.headers["ratelimit"].startswith('"all";')


def test_the_user_scope_follows_the_user_across_ips(framework):
    service = build(framework, user_key=user_of)
    alice = {"x-user": "alice"}
    assert service.statuses("/me", 1, headers=alice, ip="10.0.0.1") == [200]
    assert service.statuses("/me", 2, headers=alice, ip="10.0.0.2") == [200, 429]
    assert service.statuses("/me", 2, headers={"x-user": "bob"}) == [200, 200]
    assert service.statuses("/me", 3, ip="10.0.0.9") == [200, 200, 429]  # anonymous: by ip


def test_a_failing_key_function_never_turns_into_a_500(framework, caplog):
    service = build(framework)
    with caplog.at_level(logging.ERROR, logger="fender.ratelimit"):
        assert service.statuses("/broken", 4) == [200, 200, 200, 200]
    assert any(r.getMessage() == "rate_limit_failed" for r in caplog.records)


def test_legacy_and_both_header_modes(flavour):
    service = build(flavour, headers="both")
    response = service.get("/items/1")
    assert response.headers["x-ratelimit-limit"] == "3"
    assert response.headers["x-ratelimit-remaining"] == "2"
    assert response.headers["x-ratelimit-reset"] == "20"
    assert "ratelimit" in response.headers
    legacy = build(flavour, headers="legacy").get("/items/1")
    assert "ratelimit" not in legacy.headers
    assert "ratelimit-policy" not in legacy.headers
    assert legacy.headers["x-ratelimit-remaining"] == "2"


def test_no_headers_mode_still_says_retry_after(flavour):
    service = build(flavour, headers="none")
    statuses = [service.get("/items/1") for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert not any(name.startswith(("ratelimit", "x-ratelimit")) for name in statuses[0].headers)
    assert statuses[3].headers["retry-after"] == "20"


# -- who is limited --------------------------------------------------------------------------------


def test_exempt_paths_and_the_allow_list(flavour):
    service = build(flavour)
    static = [service.get("/static/app.js") for _ in range(5)]
    assert {r.status_code for r in static} == {200}
    assert "ratelimit" not in static[0].headers
    allowed = [service.get("/items/1", ip="192.0.2.77") for _ in range(5)]
    assert {r.status_code for r in allowed} == {200}
    assert "ratelimit" not in allowed[0].headers


@pytest.mark.parametrize(
    ("exempt", "path", "expected"),
    [
        (("/static",), "/static", True),
        (("/static/",), "/static/app.js", True),
        (("/static",), "/static/css/a.css", True),
        (("/static",), "/staticfiles/a.css", False),  # whole segments only
        (("/static",), "/", False),
        (("/a", "/b/c"), "/b/c/d", True),
        (("/a", "/b/c"), "/b/cd", False),
        (("/",), "/anything/at/all", True),  # "/" exempts every path
        ((), "/static", False),
    ],
)
def test_exempt_prefixes_match_whole_segments(exempt, path, expected):
    config = RateLimitConfig(default=parse_policy("10/minute"), exempt=exempt)
    assert HttpRateLimit(config).exempt(path) is expected


def test_disabled_limits_nothing(flavour):
    service = build(flavour, enabled=False)
    assert service.statuses("/items/1", 5) == [200] * 5


def test_a_forged_forwarded_for_changes_nothing_without_a_trusted_proxy(flavour):
    service = build(flavour)
    statuses = [
        service.get("/items/1", headers={"x-forwarded-for": f"203.0.113.{i}"}).status_code
        for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_behind_a_trusted_proxy_only_the_rightmost_untrusted_address_counts(flavour):
    service = build(flavour, trusted_proxies=("10.0.0.1",))
    forged = [
        service.get("/items/1", headers={"x-forwarded-for": f"6.6.6.{i}, 203.0.113.9"})
        for i in range(4)
    ]
    assert [r.status_code for r in forged] == [200, 200, 200, 429]
    distinct = [
        service.get("/items/1", headers={"x-forwarded-for": f"203.0.113.{i + 20}"})
        for i in range(4)
    ]
    assert {r.status_code for r in distinct} == {200}
    # An untrusted peer's header is ignored: the peer itself is the client.
    untrusted = [
        service.get("/items/1", ip="10.9.9.9", headers={"x-forwarded-for": f"203.0.113.{i}"})
        for i in range(4)
    ]
    assert [r.status_code for r in untrusted] == [200, 200, 200, 429]


def test_a_malformed_forwarding_header_falls_back_to_the_peer(flavour):
    service = build(flavour, trusted_proxies=("10.0.0.1",))
    garbage = ["not-an-ip", "", "unknown", "1.2.3.4, , ", "999.1.1.1"]
    statuses = [
        service.get("/items/1", headers={"x-forwarded-for": value}).status_code for value in garbage
    ]
    assert statuses == [200, 200, 200, 429, 429]


def test_ipv6_clients_are_grouped_by_their_64(flavour):
    service = build(flavour)
    ips = ["2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:aaaa::9"]
    assert [service.get("/items/1", ip=ip).status_code for ip in ips] == [200, 200, 200]
    assert service.get("/items/1", ip="2001:db8:1:2::2").status_code == 429
    assert service.get("/items/1", ip="2001:db8:1:3::1").status_code == 200


# -- without a store -------------------------------------------------------------------------------


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def test_the_closed_fallback_answers_429_unavailable(flavour):
    service = build(flavour, url=dead_url(), fallback="closed", timeout=0.05)
    response = service.get("/items/1")
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limit_unavailable"
    assert response.json()["retry_after"] == 1
    assert response.headers["retry-after"] == "1"
    assert response.headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert "ratelimit" not in response.headers  # nothing was counted
    assert service.limiter.serving is Tier.NONE


def test_the_open_fallback_admits_everyone(flavour):
    service = build(flavour, url=dead_url(), fallback="open", timeout=0.05)
    assert service.statuses("/items/1", 6) == [200] * 6


def test_the_local_fallback_limits_with_headers(flavour):
    service = build(flavour, url=dead_url(), instances=1, timeout=0.05)
    responses = [service.get("/items/1") for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]  # ceil(3 / 1) * 1.5
    assert responses[0].headers["ratelimit"] == '"default";r=4;t=12'
    assert service.limiter.serving is Tier.MEMORY


# -- with Redis ------------------------------------------------------------------------------------


@pytest.mark.redis
def test_fastapi_over_redis_shares_limits_between_two_apps(redis_url):
    # A generous timeout: a slow answer on a loaded machine would move a decision to memory.
    config = make_config(redis_url=redis_url, timeout=1.0)

    async def scenario() -> list[int]:
        limiters = [AsyncTieredLimiter(config) for _ in range(2)]
        apps = [fastapi_app(limiter, config) for limiter in limiters]
        statuses = []
        try:
            for i in range(5):
                transport = httpx.ASGITransport(app=apps[i % 2], client=("10.0.0.1", 1))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    statuses.append((await client.get("/items/1")).status_code)
            assert {limiter.serving for limiter in limiters} == {Tier.REDIS}
        finally:
            for limiter in limiters:
                await limiter.aclose()
        return statuses

    assert asyncio.run(scenario()) == [200, 200, 200, 429, 429]


@pytest.mark.redis
def test_flask_over_redis_keeps_serving_when_redis_dies(redis_server):
    # Generous: the two decisions before the kill must come from Redis, however loaded the
    # machine; the killed server refuses at once.
    config = make_config(redis_url=redis_server.url, instances=1, timeout=1.0)
    limiter = TieredLimiter(config)
    service = Service(flask_app(limiter, config), False, ManualClock(), limiter)
    assert service.statuses("/items/1", 2) == [200, 200]
    redis_server.kill()
    responses = [service.get("/items/1") for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert "ratelimit" in responses[0].headers
    assert limiter.serving is Tier.MEMORY


# -- wiring ----------------------------------------------------------------------------------------


def test_apply_to_starlette_is_idempotent_and_covers_routes_added_later():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ok(request: Any) -> JSONResponse:
        return JSONResponse({})

    config = make_config()
    limiter = AsyncTieredLimiter(config, clock=ManualClock())
    app = Starlette(routes=[Route("/a", ok)])
    assert apply_to_starlette(app, limiter) == 1
    assert apply_to_starlette(app, limiter) == 0
    app.router.routes.append(Route("/b", ok))
    assert apply_to_starlette(app, limiter) == 1
    service = Service(app, True, ManualClock(), limiter)
    assert service.statuses("/b", 4) == [200, 200, 200, 429]


def test_a_decorator_with_burst_under_the_sliding_window_fails_at_start_up():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    @rate_limit("5/minute burst 10")
    async def ok(request: Any) -> JSONResponse:
        return JSONResponse({})

    config = make_config(algorithm="sliding")
    limiter = AsyncTieredLimiter(config)
    app = Starlette(routes=[Route("/a", ok)])
    with pytest.raises(ConfigurationError, match="burst"):
        apply_to_starlette(app, limiter)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rate": "often"}, "rate_limit"),
        ({"rate": "1/minute", "key": "planet"}, "key"),
        ({"rate": "1/minute", "cost": 0}, "cost"),
        ({"rate": "1/minute", "name": "bad name!"}, "rate_limit"),
    ],
)
def test_the_decorator_validates_at_import(kwargs, name):
    rate = kwargs.pop("rate")
    with pytest.raises(ConfigurationError) as caught:
        rate_limit(rate, **kwargs)
    assert caught.value.field == name


def test_stacked_limits_with_different_costs_are_refused():
    from flask import Flask

    app = Flask(__name__)

    @app.get("/x")
    @rate_limit("5/minute", cost=2, name="a")
    @rate_limit("5/minute", cost=1, name="b")
    def x() -> str:
        return ""

    limiter = TieredLimiter(make_config())
    with pytest.raises(ConfigurationError, match="cost"):
        apply_to_flask(app, limiter)


def test_the_decorator_only_marks_the_function():
    def view() -> str:
        return "same"

    marked = rate_limit("1/minute", cost=3)(view)
    assert marked is view
    (mark,) = view.__fender_rate_limit__
    assert (mark.cost, str(mark.policy)) == (3, "1/minute")
    assert json.dumps(view()) == '"same"'
