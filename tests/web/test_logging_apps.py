"""Logging with apps as users write them: one line per event, the same fields in every mode.

The duplicate-line cases are served as a real process would serve them (a fresh interpreter,
no pytest handler on the root logger, the real stdout and stderr): under pytest, Flask sees
pytest's capture handler and never adds its own, which hides the bug.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import orjson
import pytest
import structlog
from flask import Flask

import fender
from fender.flask import Fender
from fender.observability import _logging as fender_logging
from fender.settings import load_settings
from fender.testing import capture_logs

from conftest import Client


def served(script: str) -> tuple[list[dict[str, Any]], str]:
    """Run ``script`` in a fresh interpreter: its stdout as JSON events, its stderr as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FENDER_", "LOG_", "PYTEST_"))}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [orjson.loads(line) for line in done.stdout.splitlines()], done.stderr


FLASK_APP = """
    from flask import Flask
    from fender.flask import Fender

    app = Flask("shop")
    {before}
    Fender(app, env="development", log_format="json")

    @app.get("/order")
    def order():
        app.logger.warning("order placed")
        return "ok"

    assert app.test_client().get("/order").status_code == 200
"""


@pytest.mark.parametrize(
    "before",
    [
        pytest.param('app.logger.info("building")', id="logger-touched-before-fender"),
        pytest.param("app.debug = True", id="debug-app-logger-made-after-fender"),
    ],
)
def test_a_flask_app_logger_line_is_printed_once(before):
    events, stderr = served(FLASK_APP.format(before=before))
    assert [e["event"] for e in events if e.get("logger") == "shop"] == ["order placed"]
    assert "order placed" not in stderr  # Flask's default_handler printed it a second time


def test_a_django_event_is_printed_once():
    events, stderr = served(
        """
        import httpx
        from django.conf import settings

        settings.configure(
            DEBUG=True,  # Django's "console" handler prints only in DEBUG
            SECRET_KEY="a-django-test-key-that-is-long-enough-0123456789",
            ROOT_URLCONF="__main__",
            ALLOWED_HOSTS=["testserver"],
        )
        from django.core.wsgi import get_wsgi_application
        from django.http import HttpResponse
        from django.urls import path

        import fender

        urlpatterns = [path("orders", lambda request: HttpResponse("ok"))]
        app = fender.wsgi.wrap(get_wsgi_application(), env="development", log_format="json")
        client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")
        assert client.get("/orders").status_code == 200
        assert client.get("/missing").status_code == 404
        """
    )
    assert [e["event"] for e in events if e.get("logger") == "django.request"] == [
        "Not Found: /missing"
    ]
    assert "Not Found" not in stderr
    assert [e["status"] for e in events if e["event"] == "request"] == [200, 404]


def test_caplog_debug_works_when_the_first_install_comes_after_it(caplog, monkeypatch):
    monkeypatch.setattr(fender_logging, "_configured", False)  # this is the process's first
    caplog.set_level(logging.DEBUG)
    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        logging.getLogger("shop.cart").debug("cart recomputed")
        return "ok"

    Fender(app, env="development")
    assert app.test_client().get("/").status_code == 200
    assert "cart recomputed" in caplog.messages


def test_context_a_flask_app_binds_is_on_its_json_access_line():
    app = Flask(__name__)

    @app.before_request
    def bind_tenant() -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(tenant="acme")

    @app.get("/")
    def index() -> str:
        return "ok"

    Fender(app, env="development", log_format="json")
    try:
        with capture_logs(load_settings({"FENDER_ENV": "development"}, env_file=None)) as logs:
            assert app.test_client().get("/").data == b"ok"
    finally:
        structlog.contextvars.clear_contextvars()
    (access,) = logs.named("request")
    assert access["tenant"] == "acme"


def test_context_a_fastapi_endpoint_binds_is_on_its_json_access_line():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        structlog.contextvars.bind_contextvars(tenant="acme")
        return {"ok": "yes"}

    fender.install(app, env="development", log_format="json")
    with capture_logs(load_settings({"FENDER_ENV": "development"}, env_file=None)) as logs:
        assert Client(app, asgi=True).get("/").status_code == 200
    (access,) = logs.named("request")
    assert access["tenant"] == "acme"


def test_a_root_logging_config_made_after_fender_does_not_take_its_output():
    # Under gunicorn, fender configures logging in the master; the app's import then runs
    # Django's setup, whose LOGGING (the docs' basic example) replaces the root handlers.
    events, stderr = served(
        """
        import logging, logging.config
        import fender
        from fender.observability._logging import configure_logging

        configure_logging(fmt="json")
        logging.config.dictConfig({
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            "root": {"handlers": ["console"], "level": "WARNING"},
        })

        def app(environ, start_response):
            logging.getLogger("django.request").warning("Not Found: /polls/99/")
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no"]

        wrapped = fender.wsgi.wrap(app, env="development", log_format="json")
        import io, wsgiref.util
        environ = {}
        wsgiref.util.setup_testing_defaults(environ)
        environ["PATH_INFO"] = "/polls/99/"
        body = wrapped(environ, lambda status, headers, exc_info=None: None)
        b"".join(body)
        """
    )
    assert stderr == ""  # nothing through the app's console handler (dicts, plain text)
    named = [e for e in events if e.get("event") == "Not Found: /polls/99/"]
    assert len(named) == 1
    assert named[0]["request_id"]
