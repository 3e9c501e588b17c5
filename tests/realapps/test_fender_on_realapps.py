"""fender's promises, checked on the corpus of apps it did not write.

Limits hold on every route (included routers, mounts, hosts, blueprints; per client where
there is no router); metrics label every route by its full template; the apps' own routes win
over fender's, with a warning; one line per event; testing mode relaxes only what it says;
app factories leak nothing; production rules judge the secret and debug flag the app uses.

Unless a test says otherwise the apps run as in production (``FENDER_TESTING=0``,
``FENDER_ENV=production``, strong secrets), with ``FENDER_RATE_LIMIT=3/minute`` so that a limit
is reached in four requests.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from werkzeug.security import generate_password_hash

from fender.errors import ConfigurationError
from fender.testing import capture_logs, get_logger
from realapps import WITHOUT_FENDER, drive
from realapps.checks import (
    STRONG_KEY,
    Counts,
    clean_environment,
    grown,
    json_line,
    production_environment,
    read_counts,
)
from realapps.django_project import views
from realapps.fastapi_project.main import create_app as create_fastapi_app
from realapps.flask_project import create_app as create_flask_app
from realapps.flask_project.auth import HASH_METHOD
from realapps.flask_project.db import get_db, init_db
from realapps.starlette_project.app import create_app as create_starlette_app

from servers import wait_for

TESTS = Path(__file__).resolve().parent.parent
LIMIT = 3  # FENDER_RATE_LIMIT below
APPS = ["fastapi", "starlette", "flask", "django"]
API_KEY = {"X-API-Key": "test-api-key"}
DOCS_HOST = "http://docs.example.com"

# Every route of each app with a request it answers 200, keyed by the template that must
# label it. Django routes inside its handler: fender asks its URLconf.
ROUTES: dict[str, dict[str, tuple[str, str, dict[str, Any]]]] = {
    "fastapi": {
        "/api/v1/users": ("GET", "/api/v1/users", {"headers": API_KEY}),
        "/api/v1/users/{user_id}": ("GET", "/api/v1/users/1", {"headers": API_KEY}),
        "/api/v1/items/{item_id}": ("GET", "/api/v1/items/1", {}),
        "/api/v2/users/{user_id}": ("GET", "/api/v2/users/1", {"headers": API_KEY}),
        "/static/{path}": ("GET", "/static/hello.txt", {}),
        "/admin/stats": ("GET", "/admin/stats", {}),
        "/docs": ("GET", "/docs", {}),
        "/openapi.json": ("GET", "/openapi.json", {}),
        "/health": ("GET", "/health", {}),  # the app's own
    },
    "starlette": {
        "/": ("GET", "/", {}),
        "/api/notes": ("GET", "/api/notes", {}),
        "/api/notes/{note_id}": ("GET", "/api/notes/1", {}),
        "/v2/notes/{note_id}": ("GET", "/v2/notes/1", {}),
        "/static/{path}": ("GET", "/static/site.css", {}),
        "/pages/{slug}": ("GET", f"{DOCS_HOST}/pages/intro", {}),
    },
    "flask": {
        "/blog/": ("GET", "/blog/", {}),
        "/blog/{id}": ("GET", "/blog/1", {}),
        "/api/v1/items/{item_id}": ("GET", "/api/v1/items/1", {}),
        "/static/{filename}": ("GET", "/static/style.css", {}),
        "/status": ("GET", "/status", {}),  # the app's own
    },
    "django": {
        "/polls/": ("GET", "/polls/", {}),
        "/polls/{poll_id}/": ("GET", "/polls/1/", {}),
        "/status/": ("GET", "/status/", {}),  # the app's own
    },
}
# A route whose ids a client can walk: one budget for the route (its template), or, where
# fender knows no template (Django), one per client.
WALKS = {
    "fastapi": "/api/v1/items/{}",
    "starlette": "/api/notes/{}",
    "flask": "/blog/{}",
    "django": "/polls/{}/",
}


@pytest.fixture
def production(monkeypatch, tmp_path) -> pytest.MonkeyPatch:
    clean_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    for name, value in production_environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FENDER_RATE_LIMIT", f"{LIMIT}/minute")
    # the tests read /metrics right after the requests they count: no reused rendering
    monkeypatch.setenv("FENDER_METRICS_CACHE_SECONDS", "0")
    return monkeypatch


@pytest.fixture
def user_suite(monkeypatch, tmp_path) -> pytest.MonkeyPatch:
    """The environment of an app's own suite: nothing set, fender detects the test run."""
    clean_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLASK_DATABASE", str(tmp_path / "flask.sqlite"))
    return monkeypatch


# --- building and serving each app ------------------------------------------------------------


def fastapi_app() -> Any:
    app = create_fastapi_app()
    store = app.state.store
    store.add_user("Ada", "ada@example.com")
    for item_id in range(1, 10):
        store.items[item_id] = {"name": f"item {item_id}", "price": 1.0}
    return app


def flask_app() -> Any:
    app = create_flask_app()
    with app.app_context():
        init_db()
        db = get_db()
        db.execute(
            "INSERT INTO user (username, password) VALUES ('alice', ?)",
            (generate_password_hash("wonderland", method=HASH_METHOD),),
        )
        db.execute("INSERT INTO post (title, body, author_id) VALUES ('first', 'body', 1)")
        db.commit()
    return app


@contextlib.contextmanager
def django_settings() -> Iterator[None]:
    """The deployment's strong key: the settings module, imported once, has the dev one."""
    from django.test import override_settings

    load_django_settings()
    views.reset()
    with override_settings(SECRET_KEY=STRONG_KEY, DEBUG=False):
        yield


def load_django_settings() -> None:
    """Read the settings module now: an override before that would override nothing."""
    from django.conf import settings

    import realapps.django_project.wsgi  # noqa: F401  (sets DJANGO_SETTINGS_MODULE)

    assert settings.ROOT_URLCONF


def build(name: str) -> Any:
    if name == "fastapi":
        return fastapi_app()
    if name == "starlette":
        return create_starlette_app()
    if name == "flask":
        return flask_app()
    from realapps.django_project.wsgi import get_application

    return get_application()


@contextlib.contextmanager
def served(name: str, app: Any = None, *, client: str = "127.0.0.1") -> Iterator[httpx.Client]:
    """A client of app ``name`` (built now unless given), started as a server starts it."""
    with contextlib.ExitStack() as stack:
        if name == "django":
            stack.enter_context(django_settings())
        app = build(name) if app is None else app
        if name in ("fastapi", "starlette"):
            yield stack.enter_context(TestClient(app))  # one client: "testclient"
        else:
            transport = httpx.WSGITransport(app=app, remote_addr=client)
            yield stack.enter_context(
                httpx.Client(transport=transport, base_url="http://testserver")
            )


def send(client: httpx.Client, route: tuple[str, str, dict[str, Any]]) -> httpx.Response:
    method, path, options = route
    return client.request(method, path, **options)


def request_counts(client: httpx.Client) -> Counts:
    """(route, method, status_code) -> requests, read from the app's ``/metrics``."""
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    return read_counts(answer.text)


def assert_limited_after(
    client: httpx.Client, requests: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """All but the last answered (not 429); the last is a 429 with Retry-After."""
    *allowed, last = requests
    for route in allowed:
        answer = send(client, route)
        assert answer.status_code != 429, (route, answer.text)
    rejected = send(client, last)
    assert rejected.status_code == 429, (last, rejected.status_code, rejected.text)
    assert int(rejected.headers["retry-after"]) >= 1
    assert rejected.json()["error"] == "rate_limited"


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "template"),
    [
        pytest.param(name, template, id=f"{name}:{template}")
        for name in APPS
        for template in ROUTES[name]
        if template not in ("/health", "/status")
    ],
)
def test_the_default_limit_holds_on_every_route(production, name, template):
    route = ROUTES[name][template]
    with served(name) as client:
        assert_limited_after(client, [route] * (LIMIT + 1))


@pytest.mark.parametrize("name", APPS)
def test_walking_ids_shares_one_budget(production, name):
    """Per route template where fender knows the router; per client where it does not."""
    pattern = WALKS[name]
    with served(name) as client:
        assert_limited_after(client, [("GET", pattern.format(i), {}) for i in range(1, LIMIT + 2)])


def test_without_a_known_router_the_limit_is_per_client(production):
    with django_settings():
        app = build("django")
        with served("django", app, client="10.0.0.1") as first:
            assert_limited_after(first, [("GET", f"/polls/{i}/", {}) for i in range(1, LIMIT + 2)])
        with served("django", app, client="10.0.0.2") as second:
            assert second.get("/polls/1/").status_code == 200


def test_each_api_version_has_its_own_budget(production):
    """``/api/v1/users/{user_id}`` and ``/api/v2/users/{user_id}`` are two routes, not one."""
    with served("fastapi") as client:
        for _ in range(LIMIT):
            assert client.get("/api/v1/users/1", headers=API_KEY).status_code == 200
        assert client.get("/api/v2/users/1", headers=API_KEY).status_code == 200


@pytest.mark.parametrize("name", ["fastapi", "flask"])
def test_the_sixth_login_post_is_429_with_retry_after(production, name):
    """``@fender.rate_limit("5/minute")`` on a login inside an included router / blueprint."""
    if name == "fastapi":
        wrong = ("POST", "/api/v1/login", {"json": {"username": "alice", "password": "guess"}})
    else:
        wrong = ("POST", "/auth/login", {"data": {"username": "alice", "password": "guess"}})
    with served(name) as client:
        for _ in range(5):
            assert send(client, wrong).status_code == 401
        rejected = send(client, wrong)
        assert rejected.status_code == 429, rejected.text
        assert int(rejected.headers["retry-after"]) >= 1


# --- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", APPS)
def test_every_route_is_labelled_by_its_full_template(production, name):
    with served(name) as client:
        before = request_counts(client)
        for template, route in ROUTES[name].items():
            answer = send(client, route)
            assert answer.status_code == 200, (template, answer.text)
        after = request_counts(client)
    assert grown(before, after) == {template: {"200"} for template in ROUTES[name]}


def test_django_served_over_asgi_is_labelled_by_its_url_patterns(production):
    import asyncio

    from django.core.asgi import get_asgi_application

    import fender

    with django_settings():
        app = fender.asgi.wrap(get_asgi_application())

        async def scenario() -> tuple[Counts, Counts]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                before = read_counts((await c.get("/metrics")).text)
                for path in ("/polls/1/", "/polls/99/", "/nowhere/"):  # LIMIT of them
                    await c.get(path)
                return before, read_counts((await c.get("/metrics")).text)

        before, after = asyncio.run(scenario())
    assert grown(before, after) == {"/polls/{poll_id}/": {"200", "404"}, "unmatched": {"404"}}


def test_a_post_to_an_included_router_is_labelled_by_its_full_template(production):
    with served("fastapi") as client:
        before = request_counts(client)
        client.post("/api/v1/login", json={"username": "alice", "password": "wonderland"})
        client.post("/api/v1/users", json={"name": "Bo", "email": "b@example.com"}, headers=API_KEY)
        after = request_counts(client)
    assert grown(before, after) == {"/api/v1/login": {"200"}, "/api/v1/users": {"201"}}


# --- the app's own routes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path", "body", "setting"),
    [
        pytest.param(
            "fastapi",
            "/health",
            {"status": "ok", "service": "fastapi-project", "store_open": True},
            "FENDER_HEALTH_PREFIX",
            id="fastapi:/health",
        ),
        pytest.param(
            "flask", "/status", {"status": "ok", "app": "flask-project"}, None, id="flask:/status"
        ),
    ],
)
def test_the_apps_own_route_wins_and_fender_says_so(production, name, path, body, setting):
    with capture_logs() as logs, served(name) as client:
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.json() == body
        assert client.get("/health/ready").status_code == 200  # fender's others are still served
    shadowed = [e for e in logs.named("endpoint_shadowed") if e.get("path") == path]
    assert len(shadowed) == 1, logs.lines
    if setting is not None:
        assert setting in json.dumps(shadowed[0]), shadowed[0]


@pytest.mark.parametrize("name", APPS)
def test_fender_serves_its_endpoints_beside_the_app(production, name):
    with capture_logs() as logs, served(name) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 200
        assert "http_server_request_duration_seconds" in client.get("/metrics").text
    if name == "starlette":  # nothing of theirs at fender's paths
        assert logs.named("endpoint_shadowed") == []
    if name == "django":  # its /status/ only: its catch-all <slug>/ takes nothing of fender's
        assert [e["path"] for e in logs.named("endpoint_shadowed")] == ["/status"]


def test_a_django_projects_own_status_wins_and_its_catch_all_takes_nothing(production):
    with capture_logs() as logs, served("django") as client:
        assert client.get("/status/").json() == {"status": "ok", "app": "django-project"}
        assert client.get("/health/ready").status_code == 200
        assert client.get("/health/anything").json() == {"page": "health/anything"}
    assert [e["path"] for e in logs.named("endpoint_shadowed")] == ["/status"]


def test_a_configured_django_takes_no_path_from_another_wrapped_app(production):
    import fender

    def plain(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain"]

    with django_settings(), capture_logs() as logs:  # Django's URLconf has status/
        app = fender.wsgi.wrap(plain)
        transport = httpx.WSGITransport(app=app)
        with httpx.Client(transport=transport, base_url="http://testserver") as client:
            assert client.get("/status", headers={"Accept": "application/json"}).json()
    assert logs.named("endpoint_shadowed") == []


# --- one line per event -----------------------------------------------------------------------


@pytest.mark.parametrize("name", APPS)
def test_one_line_per_event(tmp_path, name):
    """In a process of its own, as deployed: the app's event and the access event once each.

    The duplicates come from handlers the apps bring: Flask's default handler (app.logger is
    touched before fender is), the console handler of Django's documented LOGGING, the
    FastAPI team's dictConfig.
    """
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "FENDER_", WITHOUT_FENDER, "SECRET_KEY", "FLASK_"))
    }
    environment.update(production_environment(tmp_path))
    environment["PYTHONPATH"] = str(TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "realapps.drive", name],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = output.splitlines()
    message = drive.MESSAGES[name]
    app_lines = [line for line in lines if message in line]
    assert len(app_lines) == 1, output
    assert message in (json_line(app_lines[0]) or {}).get("event", ""), app_lines[0]
    access = [line for line in lines if (json_line(line) or {}).get("event") == "request"]
    assert len(access) == 1, output
    path = drive.PATHS[name]
    others = [line for line in lines if path in line and line not in access]
    assert others == [], output


# --- under a test suite -----------------------------------------------------------------------


@pytest.mark.parametrize("name", APPS)
def test_a_test_suite_is_not_rate_limited_by_default(user_suite, name):
    """Hundreds of requests from one test client: past the default burst of 200, no 429."""
    route = next(iter(ROUTES[name].values()))
    with served(name) as client:
        statuses = Counter(send(client, route).status_code for _ in range(210))
    assert statuses == {200: 210}


@pytest.mark.parametrize("name", ["fastapi", "flask"])
def test_under_a_test_suite_marks_limit_only_when_the_test_asks(user_suite, name):
    if name == "fastapi":
        wrong = ("POST", "/api/v1/login", {"json": {"username": "alice", "password": "guess"}})
    else:
        wrong = ("POST", "/auth/login", {"data": {"username": "alice", "password": "guess"}})
    # A suite logs in more often than a user: the app's own 5/minute mark would fail it.
    with served(name) as client:
        assert [send(client, wrong).status_code for _ in range(6)] == [401] * 6
    user_suite.setenv("FENDER_RATE_LIMIT_ENABLED", "1")  # the test that checks the limit
    with served(name) as client:
        assert [send(client, wrong).status_code for _ in range(6)] == [401] * 5 + [429]


def test_under_a_test_suite_an_explicit_default_still_limits(user_suite):
    user_suite.setenv("FENDER_RATE_LIMIT", f"{LIMIT}/minute")
    with served("fastapi") as client:
        assert_limited_after(client, [ROUTES["fastapi"]["/api/v1/items/{item_id}"]] * (LIMIT + 1))


def test_under_a_test_suite_production_rules_are_relaxed(user_suite):
    """A user's suite: no SECRET_KEY anywhere, Flask's "dev" key, FENDER_ENV unset."""
    assert create_flask_app().secret_key == "dev"
    with served("fastapi") as client:
        assert client.get("/health/ready").status_code == 200


def test_flask_testing_alone_is_detected(user_suite):
    """Outside pytest (no PYTEST_VERSION), ``TESTING=True`` is the signal."""
    user_suite.delenv("PYTEST_VERSION", raising=False)
    app = create_flask_app({"TESTING": True})  # "dev" key, no SECRET_KEY, production default
    assert app.test_client().get("/status").status_code == 200


# --- lifecycles -------------------------------------------------------------------------------

CYCLES = 50


def _settled(bound: int) -> bool:
    gc.collect()
    return threading.active_count() <= bound


@pytest.mark.parametrize("environment", ["user_suite", "production"])
@pytest.mark.parametrize("name", ["fastapi", "flask"])
def test_an_app_per_test_leaks_no_thread(request, name, environment):
    """50 create/use/close cycles, as a suite whose fixture builds an app per test."""
    request.getfixturevalue(environment)

    def cycle() -> None:
        with served(name) as client:
            assert client.get(ROUTES[name]["/api/v1/items/{item_id}"][1]).status_code == 200

    for _ in range(5):
        cycle()
    gc.collect()
    threads = threading.active_count()
    for _ in range(CYCLES - 5):
        cycle()
    try:
        wait_for(lambda: _settled(threads + 2), 10, "threads of the dropped apps to end")
    except TimeoutError:
        names = sorted(thread.name for thread in threading.enumerate())
        pytest.fail(f"{len(names)} threads after {CYCLES} apps, {threads} after 5: {names}")


def test_a_fastapi_app_started_twice_is_ready_again(production):
    app = fastapi_app()
    wrong = {"username": "alice", "password": "guess"}
    with TestClient(app) as client:
        assert client.get("/health/ready").status_code == 200
        for _ in range(5):
            assert client.post("/api/v1/login", json=wrong).status_code == 401
    with TestClient(app) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        # A new start forgets the counts of the last one.
        assert client.post("/api/v1/login", json=wrong).status_code == 401


def test_flask_test_client_requests_are_recorded_though_never_closed(production):
    app = flask_app()
    client = app.test_client()
    metrics = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")
    before = request_counts(metrics)
    with capture_logs() as logs:
        answer = client.get("/api/v1/items/1")  # Flask's test client never closes it
        assert answer.status_code == 200
        get_logger("realapps").info("after the request")
    after = request_counts(metrics)
    metrics.close()
    assert grown(before, after) == {"/api/v1/items/{item_id}": {"200"}}
    access = [e for e in logs.named("request") if e.get("route") == "/api/v1/items/{item_id}"]
    assert len(access) == 1, logs.lines
    later = logs.named("after the request")
    assert later, logs.lines
    assert later[0].get("request_id") is None  # the finished request's id does not stick


# --- production rules judge the app -----------------------------------------------------------


def test_flask_dev_secret_in_the_app_config_is_refused_in_production(production):
    """A strong SECRET_KEY in the environment does not help: Flask signs with app.secret_key."""
    production.delenv("FLASK_SECRET_KEY")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_flask_app()


def test_flask_debug_is_refused_in_production(production):
    with pytest.raises(ConfigurationError, match=r"(?i)debug"):
        create_flask_app({"DEBUG": True})


def test_flask_with_its_own_strong_secret_starts_in_production(production):
    app = create_flask_app()
    assert app.test_client().get("/status").status_code == 200


@pytest.mark.parametrize("name", ["fastapi", "starlette"])
def test_an_app_that_signs_nothing_needs_no_secret_key(production, name):
    production.delenv("SECRET_KEY")
    with served(name) as client:
        assert client.get("/health/ready").status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(
            {"SECRET_KEY": "django-insecure-0123456789abcdefghijklmnopqrstuvwxyz"},
            id="insecure-key",
        ),
        pytest.param({"SECRET_KEY": STRONG_KEY, "DEBUG": True}, id="debug"),
    ],
)
def test_django_settings_are_judged_in_production(production, overrides):
    from django.test import override_settings

    from realapps.django_project.wsgi import get_application

    load_django_settings()
    with override_settings(**overrides), pytest.raises(ConfigurationError):
        get_application()
