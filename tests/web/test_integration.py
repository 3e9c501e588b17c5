"""install(), wrap() and Fender(): options, errors, lifespan hooks."""

from __future__ import annotations

import asyncio
import secrets

import pytest

import fender
from fender.errors import ConfigurationError

from apps import fastapi_app, flask_app


def test_install_twice_is_an_error():
    app = fastapi_app()
    with pytest.raises(ConfigurationError, match="without fender installed"):
        fender.install(app, env="development")


def test_install_on_a_bare_asgi_app_points_to_wrap():
    async def app(scope, receive, send): ...

    with pytest.raises(ConfigurationError, match=r"fender\.asgi\.wrap"):
        fender.install(app)


def test_flask_twice_is_an_error():
    from fender.flask import Fender

    app = flask_app()
    with pytest.raises(ConfigurationError):
        Fender(app, env="development")


def test_a_typo_in_an_option_is_an_error_naming_it():
    with pytest.raises(ConfigurationError, match="slow_requst_ms"):
        fastapi_app(slow_requst_ms=5)


def test_a_bad_option_value_names_the_setting():
    with pytest.raises(ConfigurationError, match="FENDER_SLOW_REQUEST_MS"):
        fastapi_app(slow_request_ms=-1)


def test_production_without_secret_key_builds_an_app_that_signs_nothing():
    # A FastAPI app without a session middleware signs nothing: no SECRET_KEY to demand.
    fastapi_app(env="production")


def test_production_with_a_weak_secret_key_refuses_to_build():
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        fastapi_app(env="production", secret_key="short")


def test_production_with_a_good_key_builds():
    fastapi_app(env="production", secret_key=secrets.token_urlsafe(48))


def test_flask_state_lives_in_extensions_and_sessions_stay_off():
    app = flask_app(secret_key=secrets.token_urlsafe(48))
    assert app.extensions["fender"].settings.service_name == "app"
    # Setting app.secret_key would switch Flask's cookie sessions on: +40 µs a request for
    # apps that never use them (bench/RESULTS.md). The app decides.
    assert app.secret_key is None


def test_flask_init_app_pattern():
    from flask import Flask

    from fender.flask import Fender

    ext = Fender(env="development")
    first, second = Flask("first"), Flask("second")
    ext.init_app(first)
    ext.init_app(second, service_name="second")
    assert first.extensions["fender"] is not second.extensions["fender"]
    assert second.extensions["fender"].settings.service_name == "second"


async def _lifespan(app) -> list[str]:
    """Drive the ASGI lifespan protocol as a server does; return what the app answered."""
    inbox: asyncio.Queue = asyncio.Queue()
    answers: list[str] = []
    answered = asyncio.Event()

    async def receive():
        return await inbox.get()

    async def send(message):
        answers.append(message["type"])
        answered.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(answered.wait(), 30)
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 30)
    return answers


def test_install_runs_hooks_around_the_app_lifespan():
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    order: list[str] = []

    @asynccontextmanager
    async def lifespan(app):
        order.append("app startup")
        yield
        order.append("app shutdown")

    app = FastAPI(lifespan=lifespan)
    runtime = fender.install(app, env="development")
    runtime.on_startup(lambda: order.append("fender startup"))

    async def async_hook() -> None:
        order.append("fender shutdown")

    runtime.on_shutdown(async_hook)
    answers = asyncio.run(_lifespan(app))
    assert answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert order == ["fender startup", "app startup", "app shutdown", "fender shutdown"]


def test_wrap_speaks_lifespan_for_an_app_that_does_not():
    order: list[str] = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            raise RuntimeError("lifespan not supported")

    wrapped = fender.asgi.wrap(app, env="development")
    wrapped.runtime.on_startup(lambda: order.append("startup"))
    wrapped.runtime.on_shutdown(lambda: order.append("shutdown"))
    answers = asyncio.run(_lifespan(wrapped))
    assert answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert order == ["startup", "shutdown"]


def test_a_failing_shutdown_hook_does_not_stop_the_others(caplog):
    app = fastapi_app()
    runtime = app.state.fender
    ran: list[str] = []
    runtime.on_shutdown(lambda: ran.append("first registered, runs last"))

    def broken() -> None:
        raise RuntimeError("cannot close")

    runtime.on_shutdown(broken)
    asyncio.run(runtime.shutdown())
    assert ran == ["first registered, runs last"]


def test_websocket_scopes_pass_through_untouched():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    wrapped = fender.asgi.wrap(app, env="development")
    asyncio.run(wrapped({"type": "websocket", "path": "/ws", "headers": []}, None, None))
    assert seen == ["websocket"]


@pytest.mark.parametrize("factory", ["fastapi", "starlette", "flask", "bare-asgi", "bare-wsgi"])
def test_install_limits_every_route_but_not_fenders_own(factory):
    from apps import ASGI_APPS, WSGI_APPS
    from conftest import Client

    builder = {**ASGI_APPS, **WSGI_APPS}[factory]
    client = Client(builder(rate_limit="3/minute"), asgi=factory in ASGI_APPS)
    answers = [client.get("/items/7") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-policy"].endswith(";q=3;w=60")
    assert answers[3].json()["error"] == "rate_limited"
    assert int(answers[3].headers["retry-after"]) >= 1
    assert answers[3].headers["x-request-id"]
    assert all(client.get("/metrics").status_code == 200 for _ in range(5))


async def _startup_answer(app) -> str:
    inbox: asyncio.Queue = asyncio.Queue()
    answers: asyncio.Queue = asyncio.Queue()

    async def receive():
        return await inbox.get()

    async def send(message):
        await answers.put(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    answer = await asyncio.wait_for(answers.get(), 30)  # never hangs: the server gets an answer
    if answer["type"] == "lifespan.startup.complete":
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(answers.get(), 30)
    await asyncio.wait_for(task, 30)
    return str(answer["type"])


@pytest.mark.parametrize("kind", ["starlette", "bare", "silent"])
def test_a_failing_startup_hook_is_reported_to_the_server(kind):
    from starlette.applications import Starlette

    async def bare(scope, receive, send):
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.complete"})

    async def silent(scope, receive, send):
        return  # does not speak lifespan at all

    inner = {"starlette": Starlette(), "bare": bare, "silent": silent}[kind]
    app = fender.asgi.wrap(inner, env="development")

    def broken() -> None:
        raise RuntimeError("cannot connect")

    app.runtime.on_startup(broken)
    assert asyncio.run(_startup_answer(app)) == "lifespan.startup.failed"


def test_an_app_that_ignores_lifespan_still_gets_fenders_hooks():
    ran = []

    async def silent(scope, receive, send):
        return

    app = fender.asgi.wrap(silent, env="development")
    app.runtime.on_startup(lambda: ran.append("startup"))
    assert asyncio.run(_startup_answer(app)) == "lifespan.startup.complete"
    assert ran == ["startup"]
    assert app.runtime.lifecycle.state == "stopped"


def test_a_reused_header_list_does_not_grow():
    shared_headers = [(b"content-type", b"text/plain")]

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": shared_headers})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = fender.asgi.wrap(app, env="development", rate_limit_enabled=False)
    from conftest import Client

    client = Client(wrapped, asgi=True)
    for _ in range(3):
        assert len(client.get("/x").headers.get_list("x-request-id")) == 1
    assert shared_headers == [(b"content-type", b"text/plain")]


def test_fastapi_own_exception_handler_runs_inside_the_request_context():
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from prometheus_client import REGISTRY

    from fender import current_request
    from fender.testing import capture_logs

    app = FastAPI()
    seen = []

    @app.exception_handler(Exception)
    async def handler(request, exc):
        context = current_request()
        seen.append(context.request_id if context else None)
        return JSONResponse({"sorry": True}, status_code=503)

    @app.get("/crash")
    async def crash():
        raise RuntimeError("boom")

    fender.install(app, env="development")
    labels = {"route": "/crash", "method": "GET", "status_code": "503"}
    before = REGISTRY.get_sample_value("http_server_request_duration_seconds_count", labels) or 0
    from conftest import Client

    with capture_logs() as logs:
        response = Client(app, asgi=True).get("/crash", headers={"X-Request-ID": "handler-test-1"})
    assert response.status_code == 503
    assert response.json() == {"sorry": True}
    assert response.headers["x-request-id"] == "handler-test-1"
    assert seen == ["handler-test-1"]
    assert (
        REGISTRY.get_sample_value("http_server_request_duration_seconds_count", labels)
        == before + 1
    )
    errors = [e for e in logs.events if e["level"] == "error"]
    assert len(errors) == 1
    assert "RuntimeError: boom" in errors[0]["exception"]


def test_flask_own_500_page_is_kept():
    from flask import Flask

    from fender.flask import Fender

    app = Flask("own500")

    @app.errorhandler(500)
    def page(error):
        return "our own page", 500

    @app.get("/crash")
    def crash():
        raise RuntimeError("boom")

    Fender(app, env="development")
    from conftest import Client

    response = Client(app, asgi=False).get("/crash")
    assert response.status_code == 500
    assert response.text == "our own page"
    assert response.headers["x-request-id"]


def test_a_stuck_shutdown_hook_is_capped_and_the_others_still_run():
    import threading

    from fender.testing import capture_logs

    # The cap is every hook's: long enough that the quick ones (a thread to start, the limiter
    # and the store to close) finish within it on a loaded machine.
    app = fastapi_app(shutdown_hook_timeout=1.0)
    runtime = app.state.fender
    ran: list[str] = []
    release = threading.Event()
    runtime.on_shutdown(lambda: ran.append("closed first-registered"))
    runtime.on_shutdown(lambda: release.wait(60))  # a close that hangs

    async def hangs_async() -> None:
        await asyncio.sleep(60)

    runtime.on_shutdown(hangs_async)
    with capture_logs() as logs:
        asyncio.run(runtime.shutdown())
    release.set()
    assert ran == ["closed first-registered"]
    assert len(logs.named("shutdown_hook_timeout")) == 2
