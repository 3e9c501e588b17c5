"""Limits hold on every route of a FastAPI or Starlette app, however the app put it there.

FastAPI >= 0.137 adds ``include_router(...)`` routes as one lazy route per inclusion (neither
a ``Route`` nor a ``Mount``); older versions copy them into the app's routes. Either way the
default limit, the ``@rate_limit`` marks and the route's full template must hold, for each
inclusion apart (``/api/v1`` and ``/api/v2`` are counted separately).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import fender
from fender.settings import load_settings
from fender.testing import LogCapture, capture_logs

OPTIONS: dict[str, Any] = {"env": "development", "log_format": "json", "rate_limit": "3/minute"}


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    with capture_logs(load_settings({"FENDER_ENV": "development"}, env_file=None)) as capture:
        yield capture


async def _lifespan(app: Any, scenario: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Start ``app`` as a server does (lifespan), run ``scenario``, shut it down."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: dict[str, Any]) -> None:
        await answers.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(answers.get(), 30))["type"] == "lifespan.startup.complete"
    try:
        transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await scenario(client)
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await asyncio.wait_for(answers.get(), 30))["type"] == "lifespan.shutdown.complete"
        await asyncio.wait_for(task, 30)


def serve(app: Any, scenario: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    return asyncio.run(_lifespan(app, scenario))


async def statuses(client: httpx.AsyncClient, method: str, path: str, n: int) -> list[int]:
    return [(await client.request(method, path)).status_code for _ in range(n)]


class Versioned:
    """A FastAPI app as projects lay them out: nested routers, included under two versions."""

    def __init__(self, static: Path, **options: Any) -> None:
        from fastapi import APIRouter, Depends, FastAPI
        from fastapi.staticfiles import StaticFiles

        self.audited: list[str] = []

        def audit() -> None:
            self.audited.append("audit")

        users = APIRouter(prefix="/users", dependencies=[Depends(audit)])

        @users.get("/{user_id}")
        async def get_user(user_id: int) -> dict[str, int]:
            return {"user_id": user_id}

        @users.post("/login")
        @fender.rate_limit("5/minute")
        async def login() -> dict[str, str]:
            return {}

        things = APIRouter()

        @things.get("/items/{item_id}")
        async def get_item(item_id: int) -> dict[str, int]:
            return {"item_id": item_id}

        api = APIRouter()
        api.include_router(users)
        api.include_router(things, prefix="/things")

        sub = FastAPI()

        @sub.get("/ping")
        async def ping() -> dict[str, str]:
            return {}

        app = FastAPI()
        app.include_router(api, prefix="/api/v1")
        app.include_router(api, prefix="/api/v2")
        app.mount("/sub", sub)
        (static / "app.js").write_text("1;")
        app.mount("/static", StaticFiles(directory=static), name="static")
        fender.install(app, **{**OPTIONS, **options})
        self.app = app
        self.users = users


@pytest.fixture
def versioned(tmp_path: Path) -> Versioned:
    return Versioned(tmp_path)


def test_the_default_limit_holds_on_an_included_route(versioned):
    async def scenario(client: httpx.AsyncClient) -> tuple[list[int], httpx.Response]:
        seen = await statuses(client, "GET", "/api/v1/users/1", 4)
        return seen, await client.get("/api/v1/users/2")

    seen, last = serve(versioned.app, scenario)
    assert seen == [200, 200, 200, 429]
    assert last.status_code == 429  # same template: the same budget
    assert last.headers["retry-after"]
    assert last.headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert versioned.audited  # the router's dependencies still run


def test_each_inclusion_is_counted_on_its_own(versioned):
    async def scenario(client: httpx.AsyncClient) -> tuple[list[int], list[int]]:
        return (
            await statuses(client, "GET", "/api/v1/users/1", 4),
            await statuses(client, "GET", "/api/v2/users/1", 4),
        )

    assert serve(versioned.app, scenario) == ([200, 200, 200, 429], [200, 200, 200, 429])


def test_a_decorator_on_an_included_route_is_applied(versioned):
    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.post("/api/v1/users/login") for _ in range(6)]

    responses = serve(versioned.app, scenario)
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert responses[-1].headers["retry-after"]
    assert responses[0].headers["ratelimit-policy"] == '"/api/v1/users/login";q=5;w=60'


def test_nested_routers_and_mounted_apps_are_limited(versioned):
    async def scenario(client: httpx.AsyncClient) -> list[list[int]]:
        return [
            await statuses(client, "GET", "/api/v2/things/items/1", 4),
            await statuses(client, "GET", "/sub/ping", 4),
            await statuses(client, "GET", "/static/app.js", 4),
        ]

    assert serve(versioned.app, scenario) == [[200, 200, 200, 429]] * 3


def test_labels_work_with_limits_off_too(tmp_path):
    from prometheus_client import REGISTRY

    app = Versioned(tmp_path, rate_limit_enabled=False).app
    labels = {"route": "/api/v2/users/{user_id}", "method": "GET", "status_code": "200"}
    name = "http_server_request_duration_seconds_count"
    before = REGISTRY.get_sample_value(name, labels) or 0.0

    async def scenario(client: httpx.AsyncClient) -> list[int]:
        return await statuses(client, "GET", "/api/v2/users/7", 5)

    assert serve(app, scenario) == [200] * 5
    assert REGISTRY.get_sample_value(name, labels) == before + 5


def test_a_route_added_after_start_up_is_found_warned_about_once_and_limited(versioned, logs):
    # The suite runs on the newest FastAPI (its lazy inclusions); tests/realapps also runs on
    # the oldest, which copies included routes and so has no route to add late.
    assert any(hasattr(route, "effective_route_contexts") for route in versioned.app.routes)

    async def scenario(client: httpx.AsyncClient) -> list[list[int]]:
        @versioned.users.get("/late/comer")
        async def late() -> dict[str, str]:
            return {}

        return [
            await statuses(client, "GET", "/api/v1/users/late/comer", 5),
            # the router's other routes were rebuilt too, in both inclusions
            await statuses(client, "GET", "/api/v1/users/1", 4),
            await statuses(client, "GET", "/api/v2/users/1", 4),
        ]

    # The first answer came from an unwrapped route: seen after the fact, then covered.
    assert serve(versioned.app, scenario) == [
        [200, 200, 200, 200, 429],
        [200, 200, 200, 429],
        [200, 200, 200, 429],
    ]
    (warning,) = logs.named("route_not_covered")
    assert warning["level"] == "warning"
    assert warning["path"] == "/api/v1/users/late/comer"
    assert "late/comer" in warning["route"]
    assert logs.named("request")[4]["route"] == "/api/v1/users/late/comer"


def test_starlette_routers_mounts_and_hosts(tmp_path):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Host, Mount, Route, Router
    from starlette.staticfiles import StaticFiles

    async def ok(request: Any) -> JSONResponse:
        return JSONResponse({})

    @fender.rate_limit("2/minute")
    async def login(request: Any) -> JSONResponse:
        return JSONResponse({})

    (tmp_path / "app.js").write_text("1;")
    org = Router(routes=[Route("/members/{member_id:int}", ok), Route("/login", login)])
    app = Starlette(
        routes=[
            Mount("/orgs/{org_id}", app=org),
            Mount("/static", app=StaticFiles(directory=tmp_path)),
            Host("api.example.com", app=Router(routes=[Route("/v", ok)])),
        ]
    )
    fender.install(app, **OPTIONS)

    async def scenario(client: httpx.AsyncClient) -> list[list[int]]:
        return [
            await statuses(client, "GET", "/orgs/1/members/1", 4),
            await statuses(client, "GET", "/orgs/1/login", 3),
            await statuses(client, "GET", "/static/app.js", 4),
            [
                (await client.get("/v", headers={"host": "api.example.com"})).status_code
                for _ in range(4)
            ],
        ]

    assert (
        serve(app, scenario) == [[200, 200, 200, 429], [200, 200, 429]] + [[200, 200, 200, 429]] * 2
    )


def test_a_route_added_to_a_starlette_app_after_start_up_is_covered(logs):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ok(request: Any) -> JSONResponse:
        return JSONResponse({})

    app = Starlette(routes=[Route("/a", ok)])
    fender.install(app, **OPTIONS)

    async def scenario(client: httpx.AsyncClient) -> list[int]:
        app.router.routes.append(Route("/late/{n}", ok))
        return await statuses(client, "GET", "/late/1", 5)

    assert serve(app, scenario) == [200, 200, 200, 200, 429]
    (warning,) = logs.named("route_not_covered")
    assert warning["path"] == "/late/1"
