"""Never two CORS layers: fender's (FENDER_CORS_ORIGINS) or the framework's, not both."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from flask import Blueprint, Flask
from flask_cors import CORS
from starlette.middleware.cors import CORSMiddleware

import fender
from fender.errors import ConfigurationError
from fender.flask import Fender

OPTIONS: dict[str, Any] = {"env": "development", "log_format": "json"}
ORIGIN = {"Origin": "https://app.example"}


def asgi_get(app: Any, path: str, headers: dict[str, str]) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get(path, headers=headers)

    return asyncio.run(main())


def wsgi_get(app: Any, path: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        return client.get(path, headers=headers)


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    async def items() -> list[int]:
        return [1]

    return app


def test_starlettes_cors_middleware_and_fenders_cors_refuse_each_other():
    app = fastapi_app()
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"])
    with pytest.raises(ConfigurationError, match="CORSMiddleware") as caught:
        fender.install(app, **OPTIONS, cors_origins="https://app.example")
    assert caught.value.field == "FENDER_CORS_ORIGINS"


def test_a_cors_middleware_added_after_install_is_refused_when_the_stack_is_built():
    app = fastapi_app()
    fender.install(app, **OPTIONS, cors_origins="https://app.example")
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"])
    with pytest.raises(ConfigurationError, match="CORSMiddleware"):
        asgi_get(app, "/items", ORIGIN)


def test_without_fenders_cors_the_apps_own_cors_middleware_answers_alone():
    app = fastapi_app()
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"])
    fender.install(app, **OPTIONS)
    response = asgi_get(app, "/items", ORIGIN)
    assert response.headers.get_list("access-control-allow-origin") == ["https://app.example"]


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/items")
    def items() -> Any:
        return [1]

    return app


@pytest.mark.parametrize("on", ["app", "blueprint"])
def test_flask_cors_and_fenders_cors_refuse_each_other(on):
    app = flask_app()
    if on == "app":
        CORS(app)
    else:
        bp = Blueprint("api", __name__)
        CORS(bp)
        app.register_blueprint(bp)
    with pytest.raises(ConfigurationError, match="flask-cors") as caught:
        Fender(app, **OPTIONS, cors_origins="https://app.example")
    assert caught.value.field == "FENDER_CORS_ORIGINS"


def test_flask_cors_added_after_fender_fails_the_start(logs):
    app = flask_app()
    Fender(app, **OPTIONS, cors_origins="https://app.example")
    CORS(app)
    response = wsgi_get(app, "/items", ORIGIN)
    assert response.status_code == 503
    assert response.json()["error"] == "startup_failed"
    assert any("flask-cors" in line for line in logs.lines)


def test_without_fenders_cors_flask_cors_answers_alone():
    app = flask_app()
    CORS(app, origins=["https://app.example"])
    Fender(app, **OPTIONS)
    response = wsgi_get(app, "/items", ORIGIN)
    assert response.headers.get_list("access-control-allow-origin") == ["https://app.example"]
