"""Routes as fender sees them: the walk, the full templates in metrics and logs, one header reader.

A request is labelled by the full template of the route that answered it (prefixes of mounts
and of included routers in it, each inclusion apart), fender's walk finds every route an app
has or says which it cannot see, and the access event names the client the limiter counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

import fender
from fender._http import ROUTE_KEY, forwarding_headers
from fender.frameworks.routes import walk
from fender.middleware.asgi.access import route_of_scope

OPTIONS: dict[str, Any] = {"env": "development", "log_format": "json"}
COUNT = "http_server_request_duration_seconds_count"


def count(route: str, status: str = "200", method: str = "GET") -> float:
    labels = {"route": route, "method": method, "status_code": status}
    return REGISTRY.get_sample_value(COUNT, labels) or 0.0


def get(app: Any, *paths: str, **kwargs: Any) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [await client.get(path, **kwargs) for path in paths]

    return asyncio.run(main())


async def ok(request: Any) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({})


def custom_route() -> Any:
    from starlette.routing import BaseRoute, Match

    class Legacy(BaseRoute):
        path = "/legacy"

        def matches(self, _scope: Any) -> tuple[Match, dict[str, Any]]:
            return Match.NONE, {}

    return Legacy()


# -- the walk --------------------------------------------------------------------------------------


def test_the_walk_finds_each_leaf_with_its_full_template(tmp_path, logs):
    from starlette.routing import Host, Mount, Route, Router, WebSocketRoute
    from starlette.staticfiles import StaticFiles

    async def socket(websocket: Any) -> None: ...

    routes = [
        Route("/a", ok),
        Mount("/orgs/{org_id:int}", routes=[Route("/members/{member_id:int}", ok)]),
        Mount("/static", app=StaticFiles(directory=tmp_path)),
        Host("api.example.com", app=Router(routes=[Route("/v", ok)])),
        Host("files.example.com", app=StaticFiles(directory=tmp_path)),
        WebSocketRoute("/ws", socket),
        Mount("", routes=[Mount("/deep", routes=[Route("/x", ok)])]),
        custom_route(),
    ]
    leaves = list(walk(routes))
    assert [leaf.template for leaf in leaves] == [
        "/a",
        "/orgs/{org_id}/members/{member_id}",
        "/static/{path}",
        "/v",
        "/{path}",
        "/deep/x",
    ]
    assert leaves[0].endpoint is ok
    assert leaves[0].holder is routes[0]
    (warning,) = logs.named("route_not_covered")
    assert warning["level"] == "warning"
    assert warning["route"] == "/legacy"
    assert warning["type"].endswith("Legacy")
    assert "not rate-limited" in warning["why"]


def test_the_walk_sees_into_fastapi_included_routers_once_per_inclusion():
    from fastapi import APIRouter, FastAPI

    router = APIRouter(prefix="/users")

    @router.get("/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"user_id": user_id}

    router.add_route("/plain", ok)
    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    app.include_router(router, prefix="/api/v2")
    leaves = [leaf for leaf in walk(app.router.routes) if leaf.template.startswith("/api")]
    assert sorted(leaf.template for leaf in leaves) == [
        "/api/v1/plain",  # (add_route: the router's prefix is not applied)
        "/api/v1/users/{user_id}",
        "/api/v2/plain",
        "/api/v2/users/{user_id}",
    ]
    # one wrappable object per inclusion, never the route both share
    assert len({id(leaf.holder) for leaf in leaves}) == 4
    assert {leaf.endpoint for leaf in leaves} == {get_user, ok}


def test_an_unknown_route_type_is_reported_once_at_install(logs):
    from starlette.applications import Starlette
    from starlette.routing import Route

    app = Starlette(routes=[Route("/a", ok), custom_route()])
    fender.install(app, **OPTIONS)
    from fender.frameworks.starlette import apply_to_starlette

    apply_to_starlette(app, app.state.fender.limiter)  # as at startup: no second warning
    (warning,) = logs.named("route_not_covered")
    assert warning["route"] == "/legacy"


def test_fastapi_frontend_routes_are_reported_not_skipped(tmp_path, logs):
    from fastapi import APIRouter, FastAPI

    assert hasattr(FastAPI, "frontend")  # the suite runs on the newest FastAPI (see pyproject)
    (tmp_path / "index.html").write_text("<html></html>")
    app = FastAPI()
    app.frontend("/", directory=tmp_path)
    router = APIRouter()
    router.frontend("/ui", directory=tmp_path)
    app.include_router(router, prefix="/v1")
    fender.install(app, **OPTIONS)
    assert sorted(e["route"] for e in logs.named("route_not_covered")) == ["/", "/v1/ui"]


def test_wrapping_twice_never_double_wraps():
    from starlette.applications import Starlette
    from starlette.routing import Route

    from fender.frameworks.starlette import apply_to_starlette
    from fender.middleware.asgi.ratelimit import LimitedRoute
    from fender.middleware.asgi.routes import RouteMarker

    app = Starlette(routes=[Route("/a", ok)])
    fender.install(app, **OPTIONS, rate_limit_enabled=False)
    route = app.router.routes[0]
    assert type(route.app) is RouteMarker  # labels even with limits off
    limiter = app.state.fender.limiter
    assert apply_to_starlette(app, limiter) == 0
    enabled = dataclasses.replace(limiter.core.config, enabled=True)
    assert apply_to_starlette(app, limiter, enabled) == 1  # the marker becomes a limiter
    assert apply_to_starlette(app, limiter, enabled) == 0
    assert isinstance(route.app, LimitedRoute)
    assert not isinstance(route.app.app, RouteMarker)


# -- labels ----------------------------------------------------------------------------------------


def fastapi_app(static: Path, **options: Any) -> Any:
    from fastapi import APIRouter, FastAPI
    from fastapi.staticfiles import StaticFiles

    users = APIRouter(prefix="/users")

    @users.get("/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"user_id": user_id}

    sub = FastAPI()

    @sub.get("/ping/{n}")
    async def ping(n: int) -> dict[str, int]:
        return {"n": n}

    app = FastAPI()
    app.include_router(users, prefix="/api/v1")
    app.include_router(users, prefix="/api/v2")
    app.mount("/sub", sub)
    (static / "app.js").write_text("1;")
    app.mount("/static", StaticFiles(directory=static))
    fender.install(app, **{**OPTIONS, **options})
    return app


@pytest.mark.parametrize("limits", [True, False], ids=["limits-on", "limits-off"])
def test_fastapi_requests_are_labelled_by_their_full_template(tmp_path, logs, limits):
    app = fastapi_app(tmp_path, rate_limit_enabled=limits)
    expected = {
        "/api/v1/users/1": "/api/v1/users/{user_id}",
        "/api/v2/users/2": "/api/v2/users/{user_id}",
        "/sub/ping/3": "/sub/ping/{n}",
        "/static/app.js": "/static/{path}",
        "/docs": "/docs",
        "/openapi.json": "/openapi.json",
    }
    before = {route: count(route) for route in expected.values()}
    responses = get(app, *expected)
    assert [r.status_code for r in responses] == [200] * len(expected)
    assert [e["route"] for e in logs.named("request")] == list(expected.values())
    assert {route: count(route) - before[route] for route in expected.values()} == dict.fromkeys(
        expected.values(), 1
    )


def starlette_app(static: Path) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    (static / "app.js").write_text("1;")
    return Starlette(
        routes=[
            Route("/a", ok),
            Mount("/static", app=StaticFiles(directory=static)),
            Mount("/orgs/{org_id}", routes=[Route("/members/{member_id:int}", ok)]),
        ]
    )


def test_starlette_mounts_are_labelled_once_with_their_prefix(tmp_path, logs):
    app = starlette_app(tmp_path)
    fender.install(app, **OPTIONS)
    responses = get(app, "/static/app.js", "/orgs/9/members/1", "/a")
    assert [r.status_code for r in responses] == [200] * 3
    assert [e["route"] for e in logs.named("request")] == [
        "/static/{path}",
        "/orgs/{org_id}/members/{member_id}",
        "/a",
    ]


def test_without_a_wrapper_a_mount_prefix_is_not_doubled(tmp_path, logs):
    """fender.asgi.wrap knows no router: the route Starlette names in the scope labels it."""
    app = fender.asgi.wrap(starlette_app(tmp_path), **OPTIONS)
    assert [r.status_code for r in get(app, "/static/app.js")] == [200]
    (access,) = logs.named("request")
    # Starlette older than 0.38 names no route in the scope: the raw path then
    assert access["route"] in {"/static/{path}", "/static/app.js"}


def test_route_of_scope_prefers_the_marker_and_never_doubles_a_mount():
    from starlette.routing import Mount, Route

    mount = Mount("/static", app=ok)
    inner = Route("/members/{member_id}", ok)
    assert route_of_scope({ROUTE_KEY: "/x/{y}", "route": inner}, 200, "") == "/x/{y}"
    assert route_of_scope({"route": mount, "root_path": "/static"}, 200, "") == "/static/{path}"
    scope = {"route": mount, "root_path": "/app/static"}
    assert route_of_scope(scope, 200, "/app") == "/static/{path}"
    scope = {"route": inner, "root_path": "/orgs/9"}
    assert route_of_scope(scope, 200, "") == "/orgs/9/members/{member_id}"
    assert route_of_scope({}, 404, "") == "unmatched"
    assert route_of_scope({}, 200, "", routed=False) is None


# -- one reader of forwarding headers --------------------------------------------------------------


def test_repeated_forwarding_header_lines_are_one_list():
    scope = {
        "headers": [
            (b"x-forwarded-for", b"203.0.113.5"),
            (b"forwarded", b"for=192.0.2.1"),
            (b"x-forwarded-for", b"10.0.0.2"),
        ]
    }
    assert forwarding_headers(scope["headers"])[:2] == ("203.0.113.5,10.0.0.2", "for=192.0.2.1")
    assert forwarding_headers([]) == (None, None, None, None)


def test_the_access_event_names_the_client_the_limiter_counted(logs):
    from fastapi import FastAPI

    counted: list[str] = []

    def record(request: Any) -> None:
        counted.append(request.client)

    app = FastAPI()

    @app.get("/who")
    @fender.rate_limit("100/minute", key=record)
    async def who() -> dict[str, str]:
        return {}

    fender.install(app, **OPTIONS, trusted_proxies="10.0.0.0/8")
    lines = [("x-forwarded-for", "203.0.113.5"), ("x-forwarded-for", "10.0.0.2")]
    (response,) = get(app, "/who", headers=lines)
    assert response.status_code == 200
    (access,) = logs.named("request")
    assert counted == ["203.0.113.5"]
    assert access["client"] == counted[0]
