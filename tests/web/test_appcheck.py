"""Production rules judge the secret and the debug flag the app itself uses."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Host, Mount, Route

from fender._status import Finding, Status
from fender.apps import app_findings, require_app_ready
from fender.errors import ConfigurationError
from fender.settings import ProductionRuleError, Settings, load_settings, report_only
from fender.testing import capture_logs

STRONG = secrets.token_urlsafe(48)


def settings_of(**env: str) -> Settings:
    """Production with a strong SECRET_KEY unless told otherwise; never this test run's env."""
    return load_settings({"FENDER_ENV": "production", "SECRET_KEY": STRONG, **env}, env_file=None)


def production_without_secret_key(**env: str) -> Settings:
    return load_settings({"FENDER_ENV": "production", **env}, env_file=None)


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def failures(app: Any, settings: Settings) -> list[Finding]:
    return [f for f in app_findings(app, settings) if f.status is Status.FAIL]


# --- Flask ----------------------------------------------------------------------------------------


def flask_app(**config: Any) -> Any:
    from flask import Flask

    app = Flask("shop")
    app.config.update(config)
    return app


def test_flask_signing_with_dev_is_refused_despite_a_strong_env_key():
    # Flask's tutorial: app.config.from_mapping(SECRET_KEY="dev"); a cookie forged with "dev"
    # was accepted in production while SECRET_KEY in the environment was strong.
    app = flask_app(SECRET_KEY="dev")
    with pytest.raises(ProductionRuleError) as raised:
        require_app_ready(app, settings_of())
    error = raised.value
    assert isinstance(error, ConfigurationError)
    assert error.field == "app.secret_key"
    assert error.value == "***(3 chars)"
    message = str(error)
    assert message.startswith(
        "not ready for production (FENDER_ENV): Flask's app.secret_key is a known placeholder "
        "value; fix: load a random key into app.config['SECRET_KEY']"
    )
    assert "'dev'" not in message


def test_flask_debug_is_refused():
    app = flask_app(SECRET_KEY=STRONG)
    app.debug = True
    with pytest.raises(ProductionRuleError) as raised:
        require_app_ready(app, settings_of())
    assert raised.value.field == "app.debug"
    assert raised.value.value is True
    assert "Flask's app.debug is on; fix: turn debug off" in str(raised.value)


def test_flask_with_a_strong_key_passes():
    app = flask_app(SECRET_KEY=secrets.token_hex())
    require_app_ready(app, settings_of())
    assert failures(app, settings_of()) == []
    (key,) = by_check(app_findings(app, settings_of()), "app_secret_key")
    assert key.reason == "Flask's app.secret_key is set (***(64 chars))"


def test_flask_random_bytes_pass_and_the_quickstart_bytes_fail():
    require_app_ready(flask_app(SECRET_KEY=secrets.token_bytes(24)), settings_of())
    with pytest.raises(ProductionRuleError, match="known placeholder"):
        require_app_ready(flask_app(SECRET_KEY=b'_5#y2L"F4Q8z\n\xec]/'), settings_of())


def test_flask_placeholder_phrase_is_refused():
    app = flask_app(SECRET_KEY="my-super-secret-key-for-production-use")
    with pytest.raises(ProductionRuleError, match="reads as a phrase of 7 words"):
        require_app_ready(app, settings_of())


def test_flask_fallback_keys_are_judged():
    app = flask_app(SECRET_KEY=STRONG, SECRET_KEY_FALLBACKS=["dev"])
    with pytest.raises(ProductionRuleError) as raised:
        require_app_ready(app, settings_of())
    assert "SECRET_KEY_FALLBACKS[0] is a known placeholder value" in str(raised.value)


def test_flask_without_a_key_signs_nothing_and_needs_no_secret_key():
    app = flask_app()
    settings = production_without_secret_key()
    require_app_ready(app, settings)
    findings = app_findings(app, settings)
    (env_key,) = by_check(findings, "secret_key")
    assert env_key.status is Status.PASS
    (own,) = by_check(findings, "app_secret_key")
    assert own.reason == "Flask's app.secret_key is not set: the app signs no sessions"


def test_the_env_key_is_named_when_the_app_signs_with_it():
    app = flask_app(SECRET_KEY=STRONG)
    (own,) = by_check(app_findings(app, settings_of()), "app_secret_key")
    assert own.reason.startswith("Flask's app.secret_key (the environment's SECRET_KEY) is set")


def test_a_weak_env_key_is_refused_first_even_when_the_app_uses_it():
    app = flask_app(SECRET_KEY="short")
    with pytest.raises(ProductionRuleError) as raised:
        require_app_ready(app, settings_of(SECRET_KEY="short"))
    assert raised.value.field == "SECRET_KEY"


def test_flask_in_testing_mode_is_not_judged_as_production():
    app = flask_app(SECRET_KEY="dev", TESTING=True)
    settings = load_settings({"SECRET_KEY": STRONG}, env_file=None)  # production by default
    with capture_logs() as logs:
        require_app_ready(app, settings)  # nothing raised
    assert by_check(app_findings(app, settings), "app_secret_key")[0].status is Status.WARN
    (relaxed,) = logs.named("production_rules_relaxed")
    assert "Flask's TESTING" in relaxed["reason"]


def test_flask_testing_under_an_explicit_production_is_judged():
    app = flask_app(SECRET_KEY="dev", TESTING=True)
    with pytest.raises(ProductionRuleError, match=r"app\.secret_key"):
        require_app_ready(app, settings_of())  # FENDER_ENV=production set on purpose


def test_fender_testing_0_judges_a_flask_app_in_testing_mode():
    app = flask_app(SECRET_KEY="dev", TESTING=True)
    with pytest.raises(ProductionRuleError, match=r"app\.secret_key"):
        require_app_ready(app, settings_of(FENDER_TESTING="0"))


def test_development_only_warns():
    app = flask_app(SECRET_KEY="dev", DEBUG=True)
    settings = load_settings({"FENDER_ENV": "development"}, env_file=None)
    require_app_ready(app, settings)
    statuses = {f.check: f.status for f in app_findings(app, settings)}
    assert statuses["app_secret_key"] is Status.WARN
    assert statuses["app_debug"] is Status.WARN


def test_report_only_never_raises():
    with report_only():
        require_app_ready(flask_app(SECRET_KEY="dev"), settings_of())


# --- Starlette and FastAPI ------------------------------------------------------------------------


def fastapi_app(**kwargs: Any) -> Any:
    from fastapi import FastAPI

    return FastAPI(**kwargs)


def test_fastapi_without_sessions_needs_no_secret_key_in_production():
    app = fastapi_app()
    settings = production_without_secret_key()
    require_app_ready(app, settings)  # nothing raised
    findings = app_findings(app, settings)
    assert [f for f in findings if f.status is Status.FAIL] == []
    (env_key,) = by_check(findings, "secret_key")
    assert env_key.status is Status.PASS
    (own,) = by_check(findings, "app_secret_key")
    assert "no SessionMiddleware" in own.reason


def test_fastapi_signing_sessions_with_secret_is_refused():
    from starlette.middleware.sessions import SessionMiddleware

    app = fastapi_app()
    app.add_middleware(SessionMiddleware, secret_key="secret")
    with pytest.raises(ProductionRuleError) as raised:
        require_app_ready(app, production_without_secret_key())
    assert raised.value.field == "SessionMiddleware(secret_key=...)"
    assert raised.value.value == "***(6 chars)"
    assert "SessionMiddleware's secret_key is a known placeholder value" in str(raised.value)


def test_fastapi_sessions_with_a_strong_key_pass():
    from starlette.datastructures import Secret
    from starlette.middleware.sessions import SessionMiddleware

    app = fastapi_app()
    app.add_middleware(SessionMiddleware, secret_key=Secret(STRONG))
    require_app_ready(app, production_without_secret_key())


def test_fastapi_debug_is_refused():
    with pytest.raises(ProductionRuleError) as raised:
        require_app_ready(fastapi_app(debug=True), production_without_secret_key())
    assert raised.value.field == "app.debug"
    assert "FastAPI's app.debug is on" in str(raised.value)


def test_a_mounted_starlette_app_is_judged_too():
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware

    admin = Starlette(middleware=[Middleware(SessionMiddleware, secret_key="changeme")])
    app = fastapi_app()
    app.mount("/admin", admin)
    with pytest.raises(ProductionRuleError, match="app mounted at /admin"):
        require_app_ready(app, production_without_secret_key())


def test_a_weak_env_secret_key_is_judged_even_when_the_app_signs_nothing():
    # Set, something reads it (the app's own JWT signing, which fender cannot see).
    with pytest.raises(ProductionRuleError) as raised:
        require_app_ready(fastapi_app(), settings_of(SECRET_KEY="production-secret-key-32-chars"))
    assert raised.value.field == "SECRET_KEY"


def test_an_app_inside_middleware_is_found():
    class Outer:
        def __init__(self, app: Any) -> None:
            self.app = app

    wrapped = Outer(Outer(flask_app(SECRET_KEY="dev")))
    with pytest.raises(ProductionRuleError, match=r"Flask's app\.secret_key"):
        require_app_ready(wrapped, settings_of())


# --- Django ---------------------------------------------------------------------------------------


@pytest.fixture
def django_settings() -> Iterator[Any]:
    """Django configured as `startproject` leaves it: DEBUG on, a django-insecure- key."""
    import django
    from django.conf import settings
    from django.core.management.utils import get_random_secret_key

    before = settings._wrapped
    settings._wrapped = django.utils.functional.empty
    settings.configure(
        DEBUG=True,
        SECRET_KEY="django-insecure-" + get_random_secret_key(),
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[],
    )
    django.setup()
    try:
        yield settings
    finally:
        settings._wrapped = before


def test_django_debug_and_insecure_key_are_refused(django_settings):
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    with pytest.raises(ProductionRuleError) as raised:
        require_app_ready(app, settings_of())
    assert raised.value.field == "settings.SECRET_KEY"
    assert "Django's settings.SECRET_KEY is a django-insecure- key" in str(raised.value)
    reasons = [f.reason for f in failures(app, settings_of())]
    assert reasons == [
        (
            "Django's settings.SECRET_KEY is a django-insecure- key, which Django generates "
            "for development only"
        ),
        "Django's settings.DEBUG is on",
    ]


def test_django_through_a_wrapper_is_judged(django_settings):
    from django.core.asgi import get_asgi_application

    class Outer:
        def __init__(self, app: Any) -> None:
            self.app = app

    django_settings.SECRET_KEY = STRONG
    with pytest.raises(ProductionRuleError, match=r"Django's settings\.DEBUG is on") as raised:
        require_app_ready(Outer(get_asgi_application()), settings_of())
    assert raised.value.field == "settings.DEBUG"


def test_a_ready_django_passes(django_settings):
    from django.core.wsgi import get_wsgi_application

    django_settings.SECRET_KEY = STRONG
    django_settings.DEBUG = False
    require_app_ready(get_wsgi_application(), production_without_secret_key())


def test_django_settings_do_not_judge_a_flask_app(django_settings):
    # An app that only uses Django's ORM serves no Django debug page.
    require_app_ready(flask_app(), settings_of())


def test_django_settings_do_not_judge_another_wsgi_app(django_settings):
    # A configured Django in the process (an earlier test, a shared module) says nothing of
    # the secret a plain WSGI app uses.
    def bare(environ: Any, start_response: Any) -> list[bytes]:
        return []

    require_app_ready(bare, settings_of())


# --- apps fender cannot read ----------------------------------------------------------------------


def test_an_app_fender_cannot_read_only_warns():
    def bare(environ: Any, start_response: Any) -> list[bytes]:
        return []

    settings = production_without_secret_key()
    require_app_ready(bare, settings)  # nothing raised
    findings = app_findings(bare, settings)
    (app,) = by_check(findings, "app")
    assert app.status is Status.WARN
    assert "fender cannot read the secret key and debug flag" in app.reason
    (env_key,) = by_check(findings, "secret_key")
    assert env_key.status is Status.WARN


def test_the_module_imports_no_framework():
    code = (
        "import sys, fender.apps\n"
        "print(sorted(m for m in ('flask', 'starlette', 'fastapi', 'django') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def _endpoint(_request: Any) -> None: ...


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(
            lambda: SessionMiddleware(Starlette(routes=[Route("/", _endpoint)]), secret_key="dev"),
            id="session-middleware-around-the-app",
        ),
        pytest.param(
            lambda: Starlette(
                routes=[
                    Mount(
                        "/account",
                        routes=[Route("/", _endpoint)],
                        middleware=[Middleware(SessionMiddleware, secret_key="dev")],
                    )
                ]
            ),
            id="session-middleware-on-a-mount",
        ),
        pytest.param(
            lambda: Starlette(routes=[Host("admin.example.com", app=Starlette(debug=True))]),
            id="debug-app-under-a-host",
        ),
        pytest.param(
            lambda: Starlette(
                routes=[Mount("/admin", app=SessionMiddleware(Starlette(debug=True), "dev"))]
            ),
            id="debug-app-under-middleware-on-a-mount",
        ),
    ],
)
def test_what_a_starlette_app_hides_under_middleware_mounts_and_hosts_is_judged(build):
    with pytest.raises(ProductionRuleError):
        require_app_ready(build(), production_without_secret_key(FENDER_TESTING="0"))
